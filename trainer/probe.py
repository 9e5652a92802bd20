"""The frozen-feature probe (issue 31): logistic regression on cached EfficientNet-Lite stage statistics, fitted
on corpora's aligned pairs, beside the same probe on a randomly initialised trunk (the content-only control).
The baseline every trained variant must beat.

    python -m trainer.probe ../data/corpus-v4 --cache ../data/features --out ../runs/probe-v4 \\
        --eval ../data/dev-eval2 ../shared/data/dev-eval ../data/corpus-v4/test \\
        --calibration ../data/corpus-v4/calibration

Fits on the corpora's train splits (every cached view), picks the regularisation on their val splits (ROC AUC), then
scores each evaluation root's centre windows and reports per generator ROC AUC and AP with bootstrap 95%
intervals, for the pretrained probe, the control and their difference. With ``--calibration`` (whole real photos
no model trained on), the threshold is the lowest that flags at most ``--max-flagged`` of them, and the report
gives each evaluation root's reals flagged at it. Writes ``report.md`` and ``probe.npz`` (scaler, weights,
threshold, and the extractor it needs) and ``scores.csv`` (every scored image: root, generator, label, score; the
input of ``trainer.ensemble``) to ``--out``.

The logistic regression's logits on ~10^3 features fitted to a few hundred pairs run to +-30, which float32 scores
round to exactly 0 or 1 (a threshold of 1.0000 that flags nothing): a temperature fitted on the val split (Platt
scaling without the shift) keeps the scores calibrated and distinct.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from ipdscan.eval.labelled import image_files
from ipdscan.eval.metrics import bootstrap, percentile_interval
from trainer.calibrate import threshold_for
from trainer.feature_cache import Entry, Extractor, Processing, cache_features, corpus_entries, window
from trainer.shortcuts import balanced_sample, shifts_markdown, shortcut_shifts

REGULARISATION = (0.003, 0.03, 0.3, 3.0)  # LogisticRegression's C, picked on the val split
TEMPERATURES = np.geomspace(0.5, 64, 57)  # searched on the val split's log loss
RESAMPLES = 1000


@dataclass
class Probe:
    extractor: str
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    regularisation: float
    temperature: float = 1.0
    threshold: float = 0.5

    def logits(self, features: np.ndarray) -> np.ndarray:
        standardised = (features.astype(np.float64) - self.mean) / self.scale
        return (standardised @ self.weights + self.bias) / self.temperature

    def scores(self, features: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-self.logits(features)))

    def save(self, path: Path, about: dict) -> None:
        np.savez(path, mean=self.mean, scale=self.scale, weights=self.weights, bias=self.bias,
                 regularisation=self.regularisation, temperature=self.temperature, threshold=self.threshold,
                 about=json.dumps({"extractor": self.extractor, **about}))


def stacked(entries: list[Entry], located: dict[str, Path]) -> tuple[np.ndarray, np.ndarray]:
    """Every cached view of the entries as rows, with its label."""
    features, labels = [], []
    for entry in entries:
        if entry.path in located:
            views = np.load(located[entry.path])
            features.append(views)
            labels.append(np.full(len(views), entry.label))
    return np.concatenate(features).astype(np.float32), np.concatenate(labels)


def fit(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], extractor: str, log=print) -> Probe:
    """Standardise on train, fit one logistic regression per C, keep the best on val's ROC AUC."""
    x, y = train
    mean, scale = x.mean(0), x.std(0) + 1e-6
    best = None
    for c in REGULARISATION:
        model = LogisticRegression(C=c, max_iter=2000).fit((x - mean) / scale, y)
        probe = Probe(extractor, mean, scale, model.coef_[0].astype(np.float32), float(model.intercept_[0]), c)
        auc = roc_auc_score(val[1], probe.scores(val[0]))
        log(f"  C={c}: val AUC {100 * auc:.1f}")
        if best is None or auc > best[0]:
            best = (auc, probe)
    probe = best[1]
    probe.temperature = fitted_temperature(probe.logits(val[0]), val[1])
    log(f"  temperature {probe.temperature:.2f} (val log loss)")
    return probe


def fitted_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The divisor of the logits that minimises log loss on held-out labels."""
    return float(min(TEMPERATURES, key=lambda t: log_loss(labels, 1 / (1 + np.exp(-logits / t)), labels=[0, 1])))


def centre_scores(probe: Probe, entries: list[Entry], located: dict[str, Path]) -> tuple[list[Entry], np.ndarray]:
    """The entries that have cached features, and their scores."""
    kept = [entry for entry in entries if entry.path in located]
    return kept, probe.scores(stacked(kept, located)[0])


def write_scores(path: Path, rows: list[tuple[str, str, str, int, float]]) -> None:
    """(path, root, generator, label, score) per image: what ``trainer.ensemble`` combines."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["path", "root", "generator", "label", "score"])
        writer.writerows((p, root, generator, label, f"{score:.9g}") for p, root, generator, label, score in rows)


def probe_scorer(probe: Probe, extractor: Extractor, batch: int = 32):
    """The probe as a shortcut scorer: each image's centre window, as evaluation scores it."""
    def score(images: list[np.ndarray]) -> np.ndarray:
        windows = np.stack([window(image, None) for image in images])
        return np.concatenate([probe.scores(extractor.features(windows[start:start + batch]))
                               for start in range(0, len(windows), batch)])
    return score


def interval_text(value: float | None, resampled: np.ndarray | None) -> str:
    if value is None:
        return "-"
    low, high = percentile_interval(resampled)
    return f"{100 * value:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def evaluation_rows(name: str, by_generator: dict[str, tuple[np.ndarray, np.ndarray]],
                    control: dict[str, tuple[np.ndarray, np.ndarray]], threshold: float) -> list[str]:
    """One markdown row per generator and one for the root's mean: AUC and AP with intervals, the control's AUC,
    the difference, and the reals flagged at the threshold."""
    rows, resampled, control_aucs, aucs = [], [], [], []
    for seed, (generator, (labels, scores)) in enumerate(by_generator.items()):
        both = 0 < labels.sum() < len(labels)
        auc = roc_auc_score(labels, scores) if both else None
        ap = average_precision_score(labels, scores) if both else None
        draws = bootstrap(labels, scores, RESAMPLES, (0, seed)) if both else None
        control_auc = roc_auc_score(*control[generator]) if both else None
        flagged = float((scores[labels == 0] >= threshold).mean()) if (labels == 0).any() else None
        rows.append(f"| {name} | {generator} | {interval_text(auc, draws['auc'] if draws else None)} | "
                    f"{interval_text(ap, draws['ap'] if draws else None)} | "
                    f"{'-' if control_auc is None else f'{100 * control_auc:.1f}'} | "
                    f"{'-' if auc is None else f'{100 * (auc - control_auc):+.1f}'} | "
                    f"{'-' if flagged is None else f'{100 * flagged:.1f}%'} |")
        if both:
            resampled.append(draws)
            aucs.append((auc, ap))
            control_aucs.append(control_auc)
    if aucs:
        mean_auc, mean_ap = np.mean(aucs, axis=0)
        auc_draws = np.mean([d["auc"] for d in resampled], axis=0)
        ap_draws = np.mean([d["ap"] for d in resampled], axis=0)
        mean_control = float(np.mean(control_aucs))
        reals = np.concatenate([s[labels == 0] for labels, s in by_generator.values()])
        rows.append(f"| {name} | **mean** | {interval_text(mean_auc, auc_draws)} | {interval_text(mean_ap, ap_draws)} | "
                    f"{100 * mean_control:.1f} | {100 * (mean_auc - mean_control):+.1f} | "
                    f"{100 * float((reals >= threshold).mean()):.1f}% |")
    return rows


def by_generator(entries: list[Entry]) -> dict[str, list[Entry]]:
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.generator, []).append(entry)
    return groups


def chosen_family(generator: str, only: list[str], without: list[str]) -> bool:
    family = generator.removeprefix("local_")
    return (not only or family.startswith(tuple(only))) and not family.startswith(tuple(without))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, nargs="+", help="corpora whose train and val splits it fits on")
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--eval", type=Path, nargs="+", default=[])
    parser.add_argument("--calibration", type=Path, nargs="+", default=[],
                        help="folders of whole real photos no model saw, for the threshold")
    parser.add_argument("--max-flagged", type=float, default=0.05)
    parser.add_argument("--shortcuts", type=Path, nargs="+", default=[], help="labelled roots for the shortcut checks")
    parser.add_argument("--shortcut-per-class", type=int, default=10, help="reals and fakes per generator checked")
    parser.add_argument("--without", nargs="+", default=[], metavar="PREFIX",
                        help="leave generator folders starting with these out of fitting (local_ folders follow "
                             "their generator), e.g. stylegan2_faces")
    parser.add_argument("--only", nargs="+", default=[], metavar="PREFIX",
                        help="fit only on generator folders starting with these, e.g. taef2")
    parser.add_argument("--trunk", default="lite0")
    parser.add_argument("--views", type=int, default=2, help="the views per training image the cache holds")
    parser.add_argument("--blur-p", type=float, default=Processing.blur_p, help="a training view's blur probability")
    parser.add_argument("--resize-p", type=float, default=Processing.resize_p,
                        help="a training view's down-and-up resize probability")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    processing = Processing(blur_p=args.blur_p, resize_p=args.resize_p)
    args.out.mkdir(parents=True, exist_ok=True)
    entries = [entry for corpus in args.corpus for entry in corpus_entries(corpus, ("train", "val"))
               if chosen_family(entry.generator, args.only, args.without)]
    calibration = [Entry(path, 0, "calibration", "calibration", Path(path).stem)
                   for folder in args.calibration for path in image_files(folder)]
    evaluation = {root.resolve().name: corpus_entries(root, ("test", "val", "")) for root in args.eval}
    lines = [f"# Frozen-feature probe on {', '.join(map(str, args.corpus))}", "",
             "| root | generator | AUC [95%] | AP [95%] | control AUC | AUC - control | reals flagged |",
             "|---|---|---:|---:|---:|---:|---:|"]
    fitted = {}
    for kind, random_init in (("pretrained", False), ("control", True)):
        extractor = Extractor.build(args.trunk, random_init)
        located = cache_features(entries, extractor, args.cache, "train", args.views, processing=processing)
        print(f"{kind}: fitting on {sum(e.split == 'train' for e in entries)} images")
        probe = fit(stacked([e for e in entries if e.split == "train"], located),
                    stacked([e for e in entries if e.split == "val"], located), extractor.id)
        scored = {}
        for root, root_entries in {"calibration": calibration, **evaluation}.items():
            cached = cache_features(root_entries, extractor, args.cache, "centre", 1)
            scored[root] = {generator: centre_scores(probe, group, cached)
                            for generator, group in by_generator(root_entries).items()}
        if calibration:
            probe.threshold = threshold_for(scored["calibration"]["calibration"][1], args.max_flagged)
        fitted[kind] = (probe, scored)
        if kind == "pretrained" and args.shortcuts:
            images, labels = balanced_sample(args.shortcuts, args.shortcut_per_class)
            shifts = shortcut_shifts(probe_scorer(probe, extractor), images, labels)
            shortcut_lines = ["", "## Shortcut checks", "", *shifts_markdown(shifts, (labels.count(0), labels.count(1)))]
    def labelled(scored_root: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {generator: (np.array([e.label for e in kept]), scores) for generator, (kept, scores)
                in scored_root.items()}

    probe, scored = fitted["pretrained"]
    for root in evaluation:
        lines += evaluation_rows(root, labelled(scored[root]), labelled(fitted["control"][1][root]), probe.threshold)
    write_scores(args.out / "scores.csv", [(e.path, root, generator, e.label, score)
                                           for root, groups in scored.items()
                                           for generator, (kept, scores) in groups.items()
                                           for e, score in zip(kept, scores)])
    lines += ["", f"Threshold {probe.threshold:.4f} (at most {args.max_flagged:.0%} of {len(calibration)} "
              f"calibration photos flagged); C = {probe.regularisation}, temperature {probe.temperature:.2f} (control C = "
              f"{fitted['control'][0].regularisation}); {RESAMPLES} stratified bootstrap resamples."]
    if args.shortcuts:
        lines += shortcut_lines
    probe.save(args.out / "probe.npz", {"corpus": list(map(str, args.corpus)), "views": args.views,
                                        "processing": asdict(processing),
                                        "calibration_photos": len(calibration)})
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
