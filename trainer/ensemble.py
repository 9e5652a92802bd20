"""Does a combination of detectors earn its place (issue 31, item 5)? Each member's per-image scores, put on one
scale by held-out real photos, averaged, and reported per generator beside every member alone.

    ipdscan scan ../data/dev-eval2 ../shared/data/dev-eval ../data/corpus-v4/calibration --out ../runs/v3/scores.csv
    python -m trainer.ensemble --labels ../runs/probe/scores.csv \\
        --member v3=../runs/v3/scores.csv --member probe=../runs/probe/scores.csv --out ../runs/ensemble

``--labels`` is a probe's ``scores.csv`` (path, root, generator, label): it names every image's root, generator
and class; rows of root ``calibration`` are the held-out real photos. A member's file is any CSV with a path
(``path`` or ``input``) and a ``score`` column: a probe's ``scores.csv``, ``ipdscan eval --scores`` or a scan
report.

The scale: a member's logit minus the mean of its logits on the calibration photos, over their standard deviation.
Nothing is fitted on the evaluation sets: equal weights, and the threshold is the lowest that flags at most
``--max-flagged`` of the calibration photos.
"""
from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from ipdscan.eval.metrics import bootstrap, percentile_interval
from trainer.calibrate import flagged_share, threshold_for

CALIBRATION = "calibration"
RESAMPLES = 1000
EPSILON = 1e-7  # scores of exactly 0 or 1 stay finite as logits


@dataclass(frozen=True)
class Image:
    root: str
    generator: str
    label: int


def read_labels(path: Path) -> dict[str, Image]:
    with path.open(newline="") as handle:
        return {str(Path(row["path"]).resolve()): Image(row["root"], row["generator"], int(row["label"]))
                for row in csv.DictReader(handle)}


def read_scores(path: Path) -> dict[str, float]:
    """path -> score for every row that has one (a scan report's error rows have none)."""
    with path.open(newline="") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        column = "path" if "path" in (rows.fieldnames or ()) else "input"
        if column not in (rows.fieldnames or ()) or "score" not in rows.fieldnames:
            raise ValueError(f"{path}: needs a path (or input) and a score column, has {rows.fieldnames}")
        return {str(Path(row[column]).resolve()): float(row["score"]) for row in rows if row["score"]}


def logit(scores: np.ndarray) -> np.ndarray:
    clipped = np.clip(scores, EPSILON, 1 - EPSILON)
    return np.log(clipped / (1 - clipped))


def calibration_scale(calibration_logits: np.ndarray) -> tuple[float, float]:
    """(centre, spread) that put a member's logits on the calibration photos' scale: (logit - centre) / spread."""
    return float(calibration_logits.mean()), float(calibration_logits.std()) + 1e-9


def standardised(scores: np.ndarray, calibration: np.ndarray) -> np.ndarray:
    """Member scores on the calibration photos' scale: z-scores of logits."""
    centre, spread = calibration_scale(logit(calibration))
    return (logit(scores) - centre) / spread


def interval_text(value: float, draws: np.ndarray) -> str:
    low, high = percentile_interval(draws)
    return f"{100 * value:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def combine(labels: dict[str, Image], members: dict[str, dict[str, float]]) -> tuple[list[str], dict[str, np.ndarray]]:
    """The paths every member scored, and each member's standardised scores on them plus their mean ("ensemble")."""
    paths = [path for path in labels if all(path in scores for scores in members.values())]
    is_calibration = np.array([labels[path].root == CALIBRATION for path in paths])
    if is_calibration.sum() < 20:
        raise ValueError(f"{is_calibration.sum()} calibration photos scored by every member: need at least 20")
    columns = {}
    for name, scores in members.items():
        raw = np.array([scores[path] for path in paths])
        columns[name] = standardised(raw, raw[is_calibration])
    columns["ensemble"] = np.mean(list(columns.values()), axis=0)
    return paths, columns


def report(labels: dict[str, Image], paths: list[str], columns: dict[str, np.ndarray], max_flagged: float) -> list[str]:
    """Per root and generator: each column's ROC AUC (the ensemble's with an interval) and the reals each flags at
    its own calibration threshold."""
    names = list(columns)
    images = [labels[path] for path in paths]
    is_calibration = np.array([image.root == CALIBRATION for image in images])
    thresholds = {name: threshold_for(values[is_calibration], max_flagged) for name, values in columns.items()}
    lines = ["| root | generator | " + " | ".join(f"{name} AUC" for name in names) + " | "
             + " | ".join(f"{name} reals flagged" for name in names) + " |",
             "|---|---|" + "---:|" * (2 * len(names))]
    groups: dict[tuple[str, str], list[int]] = {}
    for index, image in enumerate(images):
        if not is_calibration[index]:
            groups.setdefault((image.root, image.generator), []).append(index)
    for root in dict.fromkeys(root for root, _ in groups):
        aucs, draws, reals = [], [], []
        for seed, ((group_root, generator), indices) in enumerate(groups.items()):
            if group_root != root:
                continue
            y = np.array([images[i].label for i in indices])
            reals += [i for i in indices if images[i].label == 0]
            if not 0 < y.sum() < len(y):
                continue
            row_aucs = {name: roc_auc_score(y, columns[name][indices]) for name in names}
            resampled = bootstrap(y, columns["ensemble"][indices], RESAMPLES, (0, seed))["auc"]
            aucs.append([row_aucs[name] for name in names])
            draws.append(resampled)
            lines.append(f"| {root} | {generator} | " + " | ".join(
                interval_text(row_aucs[name], resampled) if name == "ensemble" else f"{100 * row_aucs[name]:.1f}"
                for name in names) + " | " + " | ".join(
                f"{100 * (columns[name][[i for i in indices if images[i].label == 0]] >= thresholds[name]).mean():.1f}%"
                for name in names) + " |")
        if aucs:
            mean = np.mean(aucs, axis=0)
            mean_draws = np.mean(draws, axis=0)
            lines.append(f"| {root} | **mean** | " + " | ".join(
                interval_text(mean[k], mean_draws) if name == "ensemble" else f"{100 * mean[k]:.1f}"
                for k, name in enumerate(names)) + " | " + " | ".join(
                f"{100 * (columns[name][reals] >= thresholds[name]).mean():.1f}%" for name in names) + " |")
    lines += ["", f"Each column standardised on {int(is_calibration.sum())} calibration photos (z-scores of logits); "
                  f"ensemble = the mean of {len(names) - 1} members; thresholds flag at most {max_flagged:.0%} of the "
                  f"calibration photos; the ensemble's AUC with a {RESAMPLES}-resample stratified bootstrap 95% "
                  f"interval."]
    return lines


def member(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=SCORES.csv, not {text!r}")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=Path, required=True, help="a probe's scores.csv: root, generator, label")
    parser.add_argument("--member", type=member, action="append", required=True, metavar="NAME=SCORES.csv")
    parser.add_argument("--max-flagged", type=flagged_share, default=0.05)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if len(args.member) < 2:
        parser.error("an ensemble needs at least two --member")
    try:
        labels = read_labels(args.labels)
        paths, columns = combine(labels, {name: read_scores(path) for name, path in args.member})
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lines = [f"# Ensemble of {', '.join(name for name, _ in args.member)}", "",
             *report(labels, paths, columns, args.max_flagged)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
