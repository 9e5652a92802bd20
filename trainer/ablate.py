"""Equal-budget ablations: training runs that differ in one thing, each scored on the dev roots.

    python -m trainer.ablate ../data/corpus-v3 --dev ../shared/data/dev-eval ../data/corpus-v3/test \\
        --out ../runs/ablation-v3 --runs all without-local -- --init-from v2.pt --pair-sync --max-steps 120

Runs: ``all`` (the whole corpus) and ``without-<family>`` for each family (``corpus_store.folder_family``; a
generator no family names is its own); ``--runs`` picks some, in that order (default: all of them), and
``without-<family>+<family>...`` leaves several out at once. Leaving a
family out means its train *and* val folders go: the run neither learns from it nor validates on it.
``--add CORPUS`` puts another corpus's generator folders into every run (a leave-in test: ``--add
../data/corpus-sd15 --runs all``). Each run trains on a view of the corpora made of symlinks, so nothing is copied.

Everything after ``--`` is passed to ``ipdscan train`` unchanged and is the same for every run (an option such as
``--npr`` makes a second ablation folder). It must give ``--max-steps``: the budget is a number of steps, the same
for every run, because minutes on a shared CPU are not equal and a resumed run would restart its clock. Each run is
scored by its last checkpoint, the weights after exactly that budget (``best.pt`` is chosen on each run's own val
split, which differs between runs). A run cut short resumes from its ``last.pt`` with the same data order; a
finished one is scored again without training. ``<out>/ABLATION.md`` is rewritten after each run: a summary
(AP per dev generator and the mean per dev root), then each run's full table.

AP does not depend on a threshold, false alarms do. ``--calibration FOLDER`` gives each run a threshold of its own, as
``trainer.calibrate`` would (at most ``--max-flagged`` of those real photos at or above it; ``--exclude`` drops
photos an ancestor trained on), and the summary adds it and the share of each dev root's reals flagged at it: false
alarms compared at the same held-out false-alarm rate, not at an arbitrary 0.5.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ipdscan.eval.eval_report import EvalReport, percent, to_markdown
from ipdscan.eval.evaluate import evaluate
from ipdscan.eval.labelled import DatasetError
from ipdscan.model.detector import load_detector
from ipdscan.model.runtime import DeviceError
from ipdscan.train import TrainError, train
from ipdscan.train import __main__ as train_cli

from .calibrate import flagged_share, photos_to_score, require_photos, score_photos, threshold_for
from .corpus_store import folder_family

SPLITS = ("train", "val")
ALL = "all"
WITHOUT = "without-"


def generator_folders(corpus: Path) -> list[str]:
    present = sorted({folder.name for split in SPLITS if (corpus / split).is_dir()
                      for folder in (corpus / split).iterdir() if folder.is_dir()})
    if not present:
        raise DatasetError(f"{corpus}: no train/<generator> or val/<generator> folders (a build_corpus output?)")
    return present


def corpus_families(corpus: Path) -> dict[str, list[str]]:
    """Family -> the corpus's generator folders in it (families with no folder here are dropped)."""
    out: dict[str, list[str]] = {}
    for generator in generator_folders(corpus):
        out.setdefault(folder_family(generator), []).append(generator)
    return out


def plan_runs(corpus: Path, added: list[Path], chosen: list[str] | None) -> dict[str, list[Path]]:
    """Run name -> the generator folders (``<corpus>/<generator>``, split left out) it trains on. Default runs:
    ``all`` and ``without-<family>`` for each family; a chosen ``without-a+b`` leaves several families out."""
    families = corpus_families(corpus)
    extra = [other / generator for other in added for generator in generator_folders(other)]
    clashes = sorted({folder.name for folder in extra} & {g for members in families.values() for g in members})
    if clashes:
        raise DatasetError(f"--add: generator folders {', '.join(clashes)} are in {corpus} already")
    names = chosen or [ALL, *(WITHOUT + family for family in families)]
    runs = {}
    for name in names:
        if name == ALL:
            left_out = []
        else:  # an unknown name, or "without-" with an empty or unknown family, is refused below
            left_out = name.removeprefix(WITHOUT).split("+") if name.startswith(WITHOUT) else [name]
        if any(family not in families for family in left_out):
            raise DatasetError(f"no run named {name}: runs are {ALL} and {WITHOUT}<family>[+<family>...], "
                               f"with families {', '.join(families)}")
        runs[name] = [corpus / generator for family, members in families.items() if family not in left_out
                      for generator in members] + extra
    return runs


def make_view(view: Path, folders: list[Path]) -> None:
    """``view/<split>/<generator>`` -> ``<corpus>/<split>/<generator>``, for each kept generator folder."""
    for split in SPLITS:
        for folder in folders:
            source = folder.parent / split / folder.name
            link = view / split / folder.name
            if source.is_dir() and not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(source.resolve(), target_is_directory=True)


def run_config(folder: Path, train_args: list[str]):
    """The run's TrainConfig: a new run, or the continuation of the one ``folder/run`` holds."""
    config = train_cli.parse_args([str(folder / "data"), "--out", str(folder / "run"), "--no-progress", *train_args],
                                  prog="python -m trainer.ablate ... --")
    if config.max_steps is None:
        raise TrainError("give --max-steps after '--': every run of an ablation trains the same number of steps")
    if (folder / "run" / "last.pt").exists():  # cut short (or finished: train stops at once, its budget spent)
        config = dataclasses.replace(config, resume=str(folder / "run"), init_from=None)
    return config


def reals_flagged(report: EvalReport, threshold: float) -> list[float | None]:
    """Per dev root (group): the share of its real images scoring above ``threshold``; None for a root without."""
    rows = report.at_threshold(threshold).rows
    shares = []
    for group in dict.fromkeys(row.group for row in rows):
        real = [row for row in rows if row.group == group and row.n_real]
        shares.append(sum(row.n_real * (1 - row.r_acc) for row in real) / sum(row.n_real for row in real)
                      if real else None)
    return shares


def summary(reports: dict[str, EvalReport], thresholds: dict[str, float]) -> list[str]:
    """One line per run: AP per dev generator, the mean AP of each dev root (group) and, with thresholds, the
    run's threshold and the share of each root's reals flagged at it."""
    first = next(iter(reports.values())).rows
    groups = list(dict.fromkeys(row.group for row in first))
    columns = [row.generator for row in first] + [f"mean {group}" for group in groups]
    if thresholds:
        columns += ["threshold"] + [f"reals flagged {group}" for group in groups]
    lines = ["| run | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for run, report in reports.items():
        means = [row.ap for row in report.table(group=True) if row.generator == "mean" and row.group]  # per root
        cells = [percent(value) for value in [*(row.ap for row in report.rows), *means]]
        if thresholds:
            cells += [f"{thresholds[run]:.4f}"] + [percent(share) for share in reals_flagged(report, thresholds[run])]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    return lines


def ablate(corpus: Path, dev: list[str], out: Path, train_args: list[str], *, added: list[Path] = (),
           runs: list[str] | None = None, calibration: list[str] = (), max_flagged: float = 0.05, log=print) -> str:
    """``calibration``: real photos no run trained on, each run's threshold flagging at most ``max_flagged`` of them."""
    planned = plan_runs(corpus, list(added), runs)
    head = ["# Ablation", "", f"corpus `{corpus}`" + "".join(f" + `{other}`" for other in added) + "; families: "
            + "; ".join(f"{family} ({', '.join(members)})" for family, members in corpus_families(corpus).items()),
            f"training options for every run: `{' '.join(train_args)}`; each run scored by its last checkpoint"]
    if calibration:
        head.append(f"each run's threshold flags at most {max_flagged:.0%} of {len(calibration)} held-out real photos "
                    "(trainer.calibrate's rule); reals flagged: the share of a dev root's reals above it")
    head.append("")
    reports, thresholds, sections = {}, {}, []
    for run, folders in planned.items():
        folder = out / run
        config = run_config(folder, train_args)  # first: a bad option leaves nothing behind
        make_view(folder / "data", folders)
        log(f"{'continuing' if config.resume else 'training'} '{run}': {len(folders)} generator folders, families "
            + ", ".join(dict.fromkeys(folder_family(folder.name) for folder in folders)))
        trained = train(config)
        detector = load_detector(folder / "run" / "last.pt", "cpu")
        reports[run] = evaluate(dev, detector, workers=1)
        if calibration:
            thresholds[run] = threshold_for(score_photos(detector, list(calibration))[0], max_flagged)
        sections += [f"## {run} ({trained['steps']} steps)", "", to_markdown(reports[run])]
        text = "\n".join([*head, *summary(reports, thresholds), "", *sections]) + "\n"
        (out / "ABLATION.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, train_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(prog="python -m trainer.ablate", description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s CORPUS --dev ROOT... --out FOLDER [options] -- TRAIN OPTIONS",
                                     epilog="TRAIN OPTIONS (after --) go to 'ipdscan train' for every run and must "
                                            "include --max-steps N, the budget each run gets.")
    parser.add_argument("corpus", type=Path, help="a build_corpus output: train/<generator>/..., val/<generator>/...")
    parser.add_argument("--dev", nargs="+", required=True, help="labelled dev roots (CNNSpot layout)")
    parser.add_argument("--out", type=Path, required=True, help="ablation folder: one run per configuration, ABLATION.md")
    parser.add_argument("--runs", nargs="+", help=f"which runs, in order: {ALL}, {WITHOUT}<family>[+<family>...] "
                                                  "(default: all and each family left out)")
    parser.add_argument("--add", nargs="+", type=Path, default=[], help="other corpora whose generators every run trains on")
    parser.add_argument("--calibration", nargs="+", type=Path, default=[],
                        help="folders of real photos no run trained on: each run gets its own threshold there, and "
                             "the summary the dev reals flagged at it")
    parser.add_argument("--exclude", nargs="+", type=Path, default=[],
                        help="with --calibration: lists of files an ancestor trained on (as trainer.calibrate)")
    parser.add_argument("--max-flagged", type=flagged_share, default=0.05, help="with --calibration (default: 0.05)")
    args = parser.parse_args(ours)
    photos = []
    if args.calibration:  # checked before any run: a bad calibration set wastes no training
        try:
            photos = photos_to_score(args.calibration, args.exclude)[0]
            require_photos(len(photos), args.calibration)
        except (ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        print(ablate(args.corpus, args.dev, args.out, train_args, added=args.add, runs=args.runs, calibration=photos,
                     max_flagged=args.max_flagged))
    except (DatasetError, DeviceError, TrainError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
