"""Leave-one-family-out ablation: one training run on the whole corpus and one without each family, each
scored on the dev-eval roots.

    python -m trainer.ablate data/corpus-v2 --dev ../shared/data/dev-eval --out runs/ablation \\
        -- --cpu-bf16 --max-minutes 20 --init-from weights/ipdnet-layer2-corpus-v1.pt

A family is a set of the corpus's generator folders (``corpus_store.folder_family``; a generator no family names is its own).
Leaving one out means its train *and* val folders go: the run neither learns from it nor picks its best
checkpoint by it. Each run trains on a view of the corpus made of symlinks to the kept generator folders, so
nothing is copied. Everything after ``--`` is passed to ``ipdscan train`` unchanged and is the same for every
run. A run whose ``best.pt`` already exists is not trained again, so a cut-short ablation resumes; the table
(``<out>/ABLATION.md``) always covers every finished run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ipdscan.eval_report import to_markdown
from ipdscan.evaluate import evaluate
from ipdscan.labelled import DatasetError
from ipdscan.runtime import DeviceError
from ipdscan.score import load_detector

from ipdscan.train import __main__ as train_cli
from ipdscan.train import TrainError, train

from .corpus_store import folder_family

SPLITS = ("train", "val")


def corpus_families(corpus: Path) -> dict[str, list[str]]:
    """Family -> the corpus's generator folders in it (families with no folder here are dropped)."""
    present = sorted({folder.name for split in SPLITS if (corpus / split).is_dir()
                      for folder in (corpus / split).iterdir() if folder.is_dir()})
    if not present:
        raise DatasetError(f"{corpus}: no train/<generator> or val/<generator> folders (a build_corpus output?)")
    out: dict[str, list[str]] = {}
    for generator in present:
        out.setdefault(folder_family(generator), []).append(generator)
    return out


def make_view(corpus: Path, view: Path, generators: list[str]) -> None:
    """``view/<split>/<generator>`` -> the corpus's folder, for each kept generator."""
    for split in SPLITS:
        for generator in generators:
            source = corpus / split / generator
            link = view / split / generator
            if source.is_dir() and not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(source.resolve(), target_is_directory=True)


def ablate(corpus: Path, dev: list[str], out: Path, train_args: list[str], log=print) -> str:
    families = corpus_families(corpus)
    runs = {"all": [generator for members in families.values() for generator in members]}
    runs.update({f"without {family}": [generator for other, members in families.items() if other != family
                                       for generator in members]
                 for family in families})
    lines = ["# Leave-one-family-out ablation", "", f"corpus `{corpus}`; families: "
             + "; ".join(f"{family} ({', '.join(members)})" for family, members in families.items()),
             f"training options for every run: `{' '.join(train_args) or '(defaults)'}`", ""]
    for run, generators in runs.items():
        folder = out / run.replace(" ", "-")
        make_view(corpus, folder / "data", generators)
        best = folder / "run" / "best.pt"
        if not best.exists():
            log(f"training '{run}': {', '.join(generators)}")
            train(train_cli.parse_args([str(folder / "data"), "--out", str(folder / "run"), "--no-progress", *train_args],
                                       prog="python -m trainer.ablate ... --"))
        report = evaluate(dev, load_detector(best, "cpu"), workers=1)
        lines += [f"## {run}", "", to_markdown(report)]
        (out / "ABLATION.md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, train_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(prog="python -m trainer.ablate", description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, help="a build_corpus output: train/<generator>/..., val/<generator>/...")
    parser.add_argument("--dev", nargs="+", required=True, help="labelled dev-eval roots (CNNSpot layout)")
    parser.add_argument("--out", type=Path, required=True, help="ablation folder: one run per configuration, ABLATION.md")
    args = parser.parse_args(ours)
    try:
        print(ablate(args.corpus, args.dev, args.out, train_args))
    except (DatasetError, DeviceError, TrainError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
