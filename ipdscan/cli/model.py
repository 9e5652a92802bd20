"""`ipdscan eval` and `ipdscan explain`: the detector measured on labelled folders, and shown on one image."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from ..choices import BACKEND_CHOICES, PRECISIONS
from ..extras import require_torch
from ..reports.publish import check_output_folder, overwritten_input
from .console import printable, shown, stderr, stdout
from .support import UsageError, fail, failures_exit_2, warn_about_workers

EVAL_EPILOG = """\b
Examples:
  ipdscan eval /data/cnnspot_test /data/GenImage --weights best.pt --out table.md --group
  ipdscan eval data/dev-eval --perturb jpeg=95,75,50 --perturb blur=1,2 --plot robustness.png
  ipdscan eval data/dev-eval --intervals 1000 --out table.json"""
EXPLAIN_EPILOG = "\b\nExample:\n  ipdscan explain suspect.jpg --out suspect-heat.png --crops 24"


@failures_exit_2
def evaluate_command(
    roots: list[Path] = typer.Argument(..., metavar="ROOT", help="Folders holding 0_real/1_fake or nature/ai sets, at any depth."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", metavar="FILE", help="Checkpoint instead of the shipped default."),
    device: str = typer.Option("auto", metavar="DEVICE", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(32, min=1, max=4096, metavar="N", help="Images per model call."),
    workers: Optional[int] = typer.Option(None, min=0, metavar="N", help="Decoding processes (default: 1 on CPU, up to 16 on CUDA)."),
    backend: Literal[BACKEND_CHOICES] = typer.Option("auto", help="What scores, as in scan --help (an .onnx --weights: onnxruntime)."),
    precision: Literal[PRECISIONS] = typer.Option("auto", help="Model arithmetic (see scan --help)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="FILE", help="Table file: .md, .csv or .json."),
    group: bool = typer.Option(False, help="Add a mean row per dataset root (Table III style)."),
    scores: Optional[Path] = typer.Option(None, metavar="FILE", help="Write every image's score to this CSV."),
    perturb: Optional[list[str]] = typer.Option(None, metavar="KIND=V,...", help="Re-score under jpeg=Q,..., blur=SIGMA,..., resize=FACTOR,..."),
    plot: Optional[Path] = typer.Option(None, metavar="FILE", help="With --perturb: AP-vs-strength plot (.png)."),
    intervals: Optional[int] = typer.Option(None, metavar="N", help="Bootstrap 95% intervals for AP and AUC from N resamples (e.g. 1000)."),
    seed: int = typer.Option(0, metavar="N", help="With --intervals: the resamples' seed (same seed, same intervals)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
):
    """Per-generator AP, ROC AUC, accuracy, real and fake accuracy, computed as CNNDetection's validate.py."""
    require_torch("eval", "train")
    from ..eval.eval_report import plot_robustness, to_markdown, write_report
    from ..eval.evaluate import evaluate
    from ..eval.labelled import DatasetError
    from ..eval.perturbations import parse_perturbations
    from ..model.backends import load_backend
    from ..model.runtime import DeviceError
    from ..model.weights import WeightsError
    try:
        if out is not None and out.suffix.lower() not in (".md", ".csv", ".json"):
            raise UsageError(f"unsupported table format {out.suffix or out.name!r}: use .md, .csv or .json")
        if plot is not None and not perturb:
            raise UsageError("--plot draws AP against perturbation strength: give --perturb too")
        if intervals is not None and intervals < 1:
            raise UsageError(f"--intervals takes the number of bootstrap resamples, 1 or more (e.g. 1000), not {intervals}")
        if seed < 0:
            raise UsageError(f"--seed takes 0 or more, not {seed}")
        for path in (out, scores, plot):
            if path is not None:
                check_output_folder(path)
        perturbations = parse_perturbations(perturb or [])
        warn_about_workers(workers)
        detector = load_backend(weights, device, precision, backend)
        report = evaluate(roots, detector, batch_size=batch_size, workers=workers, perturbations=perturbations,
                          scores_out=scores, progress=not quiet)
        if intervals:
            report = report.with_intervals(intervals, seed)
    except (UsageError, WeightsError, DeviceError, DatasetError, ValueError, FileNotFoundError) as exc:
        raise fail(str(exc))
    stdout.print("\n".join(map(printable, to_markdown(report, group).splitlines())), highlight=False, markup=False)
    if report.unreadable:
        stderr.print(f"{len(report.unreadable)} unreadable image(s) skipped, e.g. {shown(report.unreadable[0].path)}",
                     highlight=False)
    if out:
        write_report(report, out, group)
    if plot:
        plot_robustness(report, plot)


@failures_exit_2
def explain(
    image: Path = typer.Argument(..., metavar="IMAGE", help="One image file."),
    out: Path = typer.Option(..., "--out", "-o", metavar="FILE", help="Heatmap PNG: the image with tile scores blended in."),
    crops: int = typer.Option(16, min=1, max=256, metavar="N", help="About how many tiles to score."),
    tiles: Optional[int] = typer.Option(None, min=1, max=256, hidden=True),  # --crops' name before scan's was shared
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", metavar="FILE", help="Checkpoint instead of the shipped default."),
    device: str = typer.Option("auto", metavar="DEVICE", help="auto, cpu, cuda or cuda:N."),
):
    """Show where in an image the detector reacts: per-tile scores and a heatmap."""
    require_torch("explain", "train")
    from ..eval.explain import explain as explain_image
    from ..eval.explain import heatmap, read_image_file
    from ..model.detector import load_detector
    from ..model.runtime import DeviceError
    from ..model.weights import WeightsError
    from ..scanning.decode import DecodeError
    from ..scanning.fetch_options import FetchError
    try:
        if out.suffix.lower() != ".png":
            raise UsageError(f"--out must be a .png file, not {out.name}")
        check_output_folder(out)
        if overwritten_input(out, [image]) is not None:
            raise UsageError(f"--out {out} is the image {image}: the heatmap would replace it; write it to another file")
        tile_map = explain_image(load_detector(weights, device), read_image_file(image), crops if tiles is None else tiles)
        heatmap(tile_map).save(out)
    except FetchError as exc:
        raise fail(exc.message)
    except (UsageError, WeightsError, DeviceError, DecodeError, OSError) as exc:
        raise fail(f"{image}: {exc}" if isinstance(exc, DecodeError) else str(exc))
    window = tile_map.window
    if len(tile_map.scores) < tile_map.requested:
        stderr.print(f"image too small for {tile_map.requested} distinct tiles of {window}px: "
                     f"scored {len(tile_map.scores)}", highlight=False)
    stdout.print(f"{shown(image)}: centre-crop score {tile_map.centre_score:.3f}; {len(tile_map.scores)} tiles of {window}px, "
                 f"max {max(tile_map.scores):.3f}, mean {sum(tile_map.scores) / len(tile_map.scores):.3f}", highlight=False)
    for (top, left), score in sorted(zip(tile_map.offsets, tile_map.scores), key=lambda pair: -pair[1]):
        stdout.print(f"  tile x={max(0, left)} y={max(0, top)}: {score:.3f}", highlight=False)
    stderr.print(f"heatmap written to {shown(out)}", highlight=False)
