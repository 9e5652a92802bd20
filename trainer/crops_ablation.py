"""The ``--crops`` ablation: is a detector better read from the centre crop (the paper), or from the highest or the
mean score of tiles laid across the image (``ipdscan scan --crops N``)?

    python -m trainer.crops_ablation ../shared/data/dev-eval --weights weights/ipdnet-layer2-corpus-v3.pt --crops 4 9

Every image is scanned once per N, as ``ipdscan scan --crops N`` scans it (same decoder, tiles and precision); AP
per generator (scikit-learn's average_precision_score, as ``ipdscan eval``) is computed for the centre score,
crops_max and crops_mean. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from ipdscan import ScanOptions, load_detector, scan
from ipdscan.labelled import DatasetError, find_generators
from ipdscan.metrics import metrics
from ipdscan.weights import WeightsError

READINGS = ("score", "crops_max", "crops_mean")


def ablate(roots: list[str], weights: str | None, crops: list[int], device: str = "cpu") -> str:
    detector = load_detector(weights, device)
    sets = find_generators(roots)
    lines = [f"`{detector.name}` (sha256 {detector.sha256[:12]}…): AP in % per generator and reading", "",
             "| generator | real / fake | centre crop | " + " | ".join(f"max of {n} | mean of {n}" for n in crops) + " |",
             "|---|---|---:|" + "---:|---:|" * len(crops)]
    means: dict[str, list[float]] = {}
    for s in sets:
        paths, labels = s.real_paths + s.fake_paths, [0] * len(s.real_paths) + [1] * len(s.fake_paths)
        cells = []
        for n in crops:
            rows = {r.input: r for r in scan(paths, detector, options=ScanOptions(crops=n, workers=1))}
            ok = [i for i, p in enumerate(paths) if rows[p].ok]
            y = [labels[i] for i in ok]
            readings = READINGS if n == crops[0] else READINGS[1:]
            for reading in readings:
                ap = metrics(y, np.array([getattr(rows[paths[i]], reading) for i in ok]))["ap"]
                cells.append(100 * ap)
                means.setdefault(f"{n}:{reading}" if reading != "score" else "score", []).append(100 * ap)
        lines.append(f"| {s.name} | {len(s.real_paths)} / {len(s.fake_paths)} | "
                     + " | ".join(f"{c:.1f}" for c in cells) + " |")
    order = ["score"] + [f"{n}:{r}" for n in crops for r in READINGS[1:]]
    lines.append("| **mean** | | " + " | ".join(f"**{np.mean(means[k]):.1f}**" for k in order) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trainer.crops_ablation", description=__doc__.split("\n\n")[0])
    ap.add_argument("roots", nargs="+", help="labelled roots (CNNSpot layout)")
    ap.add_argument("--weights", help="checkpoint (default: the shipped default)")
    ap.add_argument("--crops", type=int, nargs="+", default=[4, 9], help="tile counts to compare (default: 4 9)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    if any(n < 2 for n in args.crops):
        ap.error("--crops takes tile counts of at least 2 (1 is the centre crop, always compared)")
    try:
        print(ablate(args.roots, args.weights, args.crops, args.device))
    except (DatasetError, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
