"""Pack a seeded subset of a built corpus into a folder small enough to travel to a lent GPU (<= --max-mb).

    python -m trainer.pack_corpus ../data/corpus-v3 --out device/corpus --max-mb 60

Whole pairs only (a real and its fake are copied together, byte for byte, so pair-synced training still finds
them; unaligned folders such as the faces are paired as ``--pair-sync`` pairs them), taken round-robin over the
families in a seeded order so each keeps its share, val pairs first (so the run can pick its best checkpoint),
then train pairs until the budget is spent. test/ and calibration/ stay behind:
checking and calibrating happen here, on the CPU, after the run.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from ipdscan.train.data import labelled_samples
from ipdscan.train.pairs import pair_up

from .corpus_store import folder_family


def pairs_in(corpus: Path, split: str, seed: int) -> dict[str, list[tuple[Path, ...]]]:
    """family -> the (real, fake) pairs of ``split``, as ``--pair-sync`` pairs them."""
    samples = [sample for folder_split, sample in labelled_samples(corpus) if folder_split == split]
    out: dict[str, list[tuple[Path, ...]]] = {}
    for pair in pair_up(samples, seed):
        if len(pair) == 2:
            out.setdefault(folder_family(pair[0].generator), []).append(tuple(Path(sample.path) for sample in pair))
    return out


def pack(corpus: Path, out: Path, max_mb: float, seed: int = 0) -> dict:
    budget, used, counts = max_mb * 1e6, 0, {}
    out.mkdir(parents=True, exist_ok=True)
    for split in ("val", "train"):
        by_family = pairs_in(corpus, split, seed)
        rng = np.random.default_rng(seed)
        queues = {family: [pairs[i] for i in rng.permutation(len(pairs))] for family, pairs in sorted(by_family.items())}
        while any(queues.values()):  # round-robin over families: each keeps its share of the budget
            for family, queue in queues.items():
                if not queue:
                    continue
                real, fake = queue.pop()
                size = real.stat().st_size + fake.stat().st_size
                if used + size > budget:
                    queue.clear()
                    continue
                for path in (real, fake):
                    target = out / path.relative_to(corpus)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
                used += size
                counts.setdefault(split, {}).setdefault(family, 0)
                counts[split][family] += 1
    summary = {"corpus": str(corpus), "megabytes": round(used / 1e6, 2), "pairs": counts, "seed": seed}
    (out / "packed.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.pack_corpus", description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, help="a build_corpus output")
    parser.add_argument("--out", type=Path, required=True, help="the packed folder (git-ignored device/ for a GPU run)")
    parser.add_argument("--max-mb", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        parser.error(f"{args.corpus} is not a folder")
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} is not empty: pack into a new folder")
    summary = pack(args.corpus, args.out, args.max_mb, args.seed)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
