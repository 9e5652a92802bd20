"""Choose a checkpoint's default threshold on held-out real photos and write it into the weights file.

    python -m trainer.calibrate runs/v2/best.pt --reals data/corpus2/calibration --max-flagged 0.05 \
        --out weights/ipdnet-layer2-corpus-v3.pt

The photos are scored exactly as ``ipdscan scan`` scores them (same decoder, crop and precision). The
threshold is the lowest at which at most ``--max-flagged`` of them score at or above it, so on photos like
these a scan flags at most that share. The photos must be ones the model never trained or validated on
(``build_corpus --calibration-fraction`` keeps such a split, and ``--exclude`` drops those an earlier model this one
was fine-tuned from did train on: lists of files, as ``build_corpus --list-sources`` prints them, matched by
content); the result travels in the file's
``calibration`` record with how it was chosen, and ``ipdscan scan`` uses it unless ``--threshold`` is given.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from ipdscan.eval.labelled import image_files
from ipdscan.model.detector import Detector, load_detector
from ipdscan.model.weights import WeightsError, load_checkpoint, save_checkpoint
from ipdscan.scanning.options import ScanOptions
from ipdscan.scanning.pipeline import scan
from ipdscan.text import threshold_text
from trainer.corpus_plan import file_sha256

MIN_PHOTOS = 20  # fewer cannot place a 5% threshold (a few hundred make it stable)


def flagged_share(text: str) -> float:
    """--max-flagged's type: a share in [0, 1)."""
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), not {text}")
    return value


def require_photos(count: int, folders: list[Path]) -> None:
    """ValueError unless ``count`` photos are enough to choose a threshold on."""
    if count < MIN_PHOTOS:
        raise ValueError(f"only {count} readable photos below {', '.join(map(str, folders))}: "
                         f"a threshold needs at least {MIN_PHOTOS} (a few hundred for a stable 5%)")


def threshold_for(scores: np.ndarray, max_flagged: float) -> float:
    """The lowest threshold t (float32 scores) with mean(scores >= t) <= max_flagged."""
    ranked = np.sort(np.asarray(scores, np.float32))[::-1]
    allowed = math.floor(max_flagged * len(ranked) + 1e-9)
    if allowed >= len(ranked):
        return 0.0
    # Just above the highest score that must stay unflagged: ties with it stay unflagged too.
    return float(np.nextafter(ranked[allowed], np.float32(np.inf)))


def photos_to_score(folders: list[Path], exclude: list[Path] = ()) -> tuple[list[str], int]:
    """The photos below ``folders``, less any whose bytes equal a file named in the ``exclude`` lists; and how many
    were left out. OSError if a listed file cannot be read (a list that does not match this machine)."""
    paths = [path for folder in folders for path in image_files(folder)]
    if not exclude:
        return paths, 0
    listed = [line.strip() for listing in exclude for line in Path(listing).read_text().splitlines() if line.strip()]
    seen = {file_sha256(path) for path in listed}
    kept = [path for path in paths if file_sha256(path) not in seen]
    return kept, len(paths) - len(kept)


def score_photos(detector: Detector, paths: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """Scores of the readable photos, their paths, and the paths that could not be scored."""
    results = list(scan(paths, detector, options=ScanOptions(threshold=1.0)))
    scored = [result for result in results if result.score is not None]
    return (np.array([result.score for result in scored], np.float32), [result.input for result in scored],
            [result.input for result in results if result.score is None])


def source_of(path: str) -> str:
    """A calibration photo's source: build_corpus names a copy after its source path with "/" as "_", so the first
    two fields are the reals root and its first folder (``0-train-real_bsds500``, ``faces_real...``: ``faces``)."""
    name = Path(path).name
    return "faces" if name.startswith("faces_") else "_".join(name.split("_")[:2])


def flagged_by_source(scores: np.ndarray, paths: list[str], threshold: float) -> dict[str, dict]:
    """Per source: photos, how many score at or above ``threshold``, and that share."""
    out: dict[str, dict] = {}
    for score, path in zip(scores, paths):
        row = out.setdefault(source_of(path), {"photos": 0, "flagged": 0})
        row["photos"] += 1
        row["flagged"] += int(score >= threshold)
    return {source: {**row, "share": round(row["flagged"] / row["photos"], 4)} for source, row in sorted(out.items())}


def calibrate(weights: Path, folders: list[Path], out: Path, max_flagged: float = 0.05, device: str = "auto",
              precision: str = "auto", exclude: list[Path] = ()) -> dict:
    checkpoint = load_checkpoint(weights)
    paths, excluded = photos_to_score(folders, exclude)
    scores, scored, failed = score_photos(load_detector(weights, device, precision), paths)
    require_photos(len(scores), folders)
    threshold = threshold_for(scores, max_flagged)
    record = {"threshold": threshold, "max_flagged": max_flagged, "photos": int(len(scores)),
              "flagged": int((scores >= threshold).sum()), "unreadable": len(failed),
              "excluded": excluded, "exclude_lists": [Path(listing).name for listing in exclude],
              "folders": [Path(folder).name for folder in folders], "precision": precision,
              "score_quantiles": {percent: round(float(np.quantile(scores, percent / 100)), 4)
                                  for percent in (50, 90, 95, 99)},
              "by_source": flagged_by_source(scores, scored, threshold),
              "calibrated_from_sha256": checkpoint.sha256}
    digest = save_checkpoint(out, checkpoint.model, checkpoint.preprocessing, name=checkpoint.name,
                             provenance=checkpoint.provenance, calibration=record)
    return {**record, "out": str(out), "sha256": digest}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", type=Path, help="checkpoint to calibrate")
    parser.add_argument("--reals", type=Path, nargs="+", required=True, help="folders of held-out real photos")
    parser.add_argument("--out", type=Path, required=True, help="where to write the calibrated checkpoint")
    parser.add_argument("--exclude", type=Path, nargs="+", default=[],
                    help="files listing photos (one path per line) to leave out: those a model this one was "
                         "fine-tuned from trained on (build_corpus --list-sources prints such a list)")
    parser.add_argument("--max-flagged", type=flagged_share, default=0.05,
                        help="largest share of the photos flagged (default 0.05)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)
    try:
        record = calibrate(args.weights, args.reals, args.out, args.max_flagged, args.device, args.precision,
                           args.exclude)
    except (WeightsError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"threshold {threshold_text(record['threshold'])}: {record['flagged']}/{record['photos']} photos flagged "
          f"({record['excluded']} excluded); "
          f"{record['out']} sha256 {record['sha256']}")
    for source, row in record["by_source"].items():
        print(f"  {source}: {row['flagged']}/{row['photos']} flagged ({row['share']:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
