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
from ipdscan.eval.labelled import DatasetError, find_generators
from ipdscan.eval.metrics import metrics
from ipdscan.model.weights import WeightsError

READINGS = ("score", "crops_max", "crops_mean")


def ablate(roots: list[str], weights: str | None, crops: list[int], device: str = "cpu") -> str:
    detector = load_detector(weights, device)
    sets = find_generators(roots)
    lines = [f"`{detector.name}` (sha256 {detector.sha256[:12]}…): AP in % per generator and reading", "",
             "| generator | real / fake | centre crop | " + " | ".join(f"max of {tiles} | mean of {tiles}" for tiles in crops) + " |",
             "|---|---|---:|" + "---:|---:|" * len(crops)]
    means: dict[str, list[float]] = {}
    for generator_set in sets:
        real_paths, fake_paths = generator_set.real_paths, generator_set.fake_paths
        paths, labels = real_paths + fake_paths, [0] * len(real_paths) + [1] * len(fake_paths)
        cells = []
        for tiles in crops:
            rows = {row.input: row for row in scan(paths, detector, options=ScanOptions(crops=tiles, workers=1))}
            scored = [i for i, path in enumerate(paths) if rows[path].ok]
            truth = [labels[i] for i in scored]
            readings = READINGS if tiles == crops[0] else READINGS[1:]
            for reading in readings:
                ap = metrics(truth, np.array([getattr(rows[paths[i]], reading) for i in scored]))["ap"]
                cells.append(100 * ap)
                means.setdefault(f"{tiles}:{reading}" if reading != "score" else "score", []).append(100 * ap)
        lines.append(f"| {generator_set.name} | {len(real_paths)} / {len(fake_paths)} | "
                     + " | ".join(f"{cell:.1f}" for cell in cells) + " |")
    order = ["score"] + [f"{tiles}:{reading}" for tiles in crops for reading in READINGS[1:]]
    lines.append("| **mean** | | " + " | ".join(f"**{np.mean(means[key]):.1f}**" for key in order) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.crops_ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="+", help="labelled roots (CNNSpot layout)")
    parser.add_argument("--weights", help="checkpoint (default: the shipped default)")
    parser.add_argument("--crops", type=int, nargs="+", default=[4, 9], help="tile counts to compare (default: 4 9)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if any(tiles < 2 for tiles in args.crops):
        parser.error("--crops takes tile counts of at least 2 (1 is the centre crop, always compared)")
    try:
        print(ablate(args.roots, args.weights, args.crops, args.device))
    except (DatasetError, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
