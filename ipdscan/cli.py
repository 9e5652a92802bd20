"""The command line: a thin typer layer over the library. Exit codes: 0 clean, 1 --fail-on tripped, 2 error.

Only light modules are imported up here: --help, --version's first line, `config` and argument errors answer at
once, without torch (seconds and hundreds of MB to load); each command imports the library it runs.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Literal, Optional

import typer

from . import __version__
from .choices import DECODE_CHOICES, EXIT_ERROR, PRECISIONS
from .config import ConfigError, default_map, settings, show_value
from .console import (ScanProgress, print_input_error, print_summary, print_warning, printable, result_table, shown,
                      stderr, stdout)
from .interrupt import sigterm_as_interrupt
from .output_format import FORMAT_NAMES, FORMATS, STDOUT, TABLE, FormatError, format_of, report_target
from .publish import check_output_folder

MAX_MB = 1 << 20  # --max-mb's ceiling (1 TiB): keeps "inf" and huge values from overflowing the byte count
REPORT_SUFFIXES = ", ".join(spec.suffix for spec in FORMATS.values())

app = typer.Typer(
    help="Flag AI-generated images in folders and URL lists with IPD-Net.",
    no_args_is_help=True, pretty_exceptions_enable=False,
    # click's plain help: wrapped to the terminal (80 columns too), choices listed, never cut off mid-name
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit 2."""


def fail(message: str) -> typer.Exit:
    stderr.print(f"[bold red]error:[/] {shown(message)}", highlight=False)
    return typer.Exit(EXIT_ERROR)


def failures_exit_2(command):
    """Whatever escapes ``command`` (Ctrl-C, SIGTERM, a bug) is one line on stderr and exit 2, never 1
    ("flagged"), 130, 143 or a traceback. SIGTERM is raised like Ctrl-C, so the command can close its report.
    Around every command but train, which hands its arguments and exit code through to the trainer (unguarded,
    click would make a Ctrl-C in merge, eval or explain exit 130)."""
    @functools.wraps(command)
    def guarded(*args, **kwargs):
        try:
            with sigterm_as_interrupt():
                return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise  # the command's own exit code
        except KeyboardInterrupt as exc:
            raise fail(str(exc) or "interrupted") from None
        except Exception as exc:  # noqa: BLE001 - the boundary: one line, not a traceback
            raise fail(f"{type(exc).__name__}: {exc}") from None
    return guarded


def version_callback(value: bool):
    """The version at once; then what a bug report needs, which takes importing torch."""
    if value:
        print(f"ipdscan {__version__}", flush=True)
        import torch

        from .weights import DEFAULT_WEIGHTS
        print(f"torch {torch.__version__}, CUDA {'available' if torch.cuda.is_available() else 'not available'}")
        if DEFAULT_WEIGHTS:
            print(f"default weights {DEFAULT_WEIGHTS.file} sha256 {DEFAULT_WEIGHTS.sha256}")
        raise typer.Exit()


@app.callback()
def root(ctx: typer.Context,
         version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                      help="Show the version (and torch's, CUDA's, the default weights') and exit.")):
    """Flag AI-generated images in folders and URL lists with IPD-Net."""
    try:  # scan's defaults from IPDSCAN_* and the config file; flags on its command line still win (config.py)
        ctx.default_map = {"scan": default_map(ctx.command.commands["scan"])}
    except ConfigError as exc:
        raise fail(str(exc))


def warn_about_workers(workers: int | None) -> None:
    """Say so when --workers asks for more processes than will be started (runtime.default_workers caps them)."""
    from .runtime import worker_limit  # torch: only once the command runs
    if workers is not None and workers > (limit := worker_limit()):
        print_warning(f"--workers {workers}: more than this machine's {limit} CPUs can use; starting {limit}")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard takes K/N, e.g. 2/8, not {text!r}") from None
    if not 1 <= k <= n:
        raise UsageError(f"--shard {text}: K must be between 1 and N")
    return k, n


@app.command(epilog="""\b
Examples:
  ipdscan scan ./photos --out report.csv
  ipdscan scan urls.txt --out report.jsonl --resume
  ipdscan scan assets/ --format jsonl --out - | jq -r .score
  find . -name '*.png' | ipdscan scan - --fail-on 0.9 --quiet
  find . -name '*.png' -print0 | ipdscan scan - -0 --out report.csv
  ipdscan scan /archive --ray --ray-address auto --out archive.jsonl --resume

Settings also come from IPDSCAN_<OPTION> variables and [tool.ipdscan] in pyproject.toml or ipdscan.toml
(see `ipdscan config`).""")
@failures_exit_2
def scan(
    inputs: list[str] = typer.Argument(..., metavar="INPUT", help="Image files, directories, URL lists (.txt/.csv), http(s) URLs, or - for stdin.", show_default=False),
    out: Optional[str] = typer.Option(None, "--out", "-o", metavar="FILE", help=f"Report file ({REPORT_SUFFIXES}: the extension picks the format), or - for stdout. Default: a table on stdout."),
    report_format: Optional[Literal[FORMAT_NAMES]] = typer.Option(None, "--format", "-f", help="Report format, whatever the --out extension; without --out, the report goes to stdout."),
    ignore_file: Optional[Path] = typer.Option(None, metavar="FILE", help="Suppression rules: sha256:HEX or a path glob per line, each with an optional '# reason'. Default: .ipdscanignore in a scanned folder or the current directory."),
    baseline: Optional[Path] = typer.Option(None, metavar="REPORT", help="An earlier .jsonl, .json or .sarif report: files it already reported are not new findings."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", metavar="FILE", help="Checkpoint to use instead of the shipped default."),
    variant: Optional[str] = typer.Option(None, metavar="VARIANT", help="Expected model variant (layer2/layer3/layer4); an error if the weights differ."),
    device: str = typer.Option("auto", metavar="DEVICE", help="auto (CUDA when present), cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(32, min=1, max=4096, metavar="N", help="Images per model call."),
    workers: Optional[int] = typer.Option(None, min=0, metavar="N", help="Decoding processes (default: 1 on CPU; on CUDA up to 8, or 16 with --decode workers)."),
    decode: Literal[DECODE_CHOICES] = typer.Option("auto", help="Where JPEGs are decoded: device (nvjpeg batches on the GPU), workers (Pillow), auto (device on CUDA)."),
    precision: Literal[PRECISIONS] = typer.Option("auto", help="Model arithmetic: auto (mixed for layer2 where bf16 is native, else fp32), fp32, mixed or bf16."),
    threshold: Optional[float] = typer.Option(None, min=0.0, max=1.0, metavar="T", help="Score at or above which an image is labelled ai. Default: the weights' own calibrated threshold (0.5 for uncalibrated weights)."),
    fail_on: Optional[float] = typer.Option(None, min=0.0, max=1.0, metavar="S", help="Exit 1 if any image scores at or above this."),
    fail_on_evidence: bool = typer.Option(False, help="Exit 1 if any file's metadata declares AI generation."),
    hidden: bool = typer.Option(False, help="Include hidden files and directories."),
    null: bool = typer.Option(False, "--null", "-0", help="With -: names on stdin end with a NUL byte, not a newline (find -print0)."),
    resume: bool = typer.Option(False, help="With a .jsonl --out: skip inputs already in it and append the rest."),
    shard: Optional[str] = typer.Option(None, metavar="K/N", help="K/N: scan only the K-th of N deterministic partitions of the inputs."),
    allow_private_urls: bool = typer.Option(False, help="Allow URLs on loopback/private addresses (intranets, tests)."),
    max_mb: float = typer.Option(50.0, min=0.001, max=MAX_MB, metavar="MB", help="Largest file or download accepted, in MB."),
    timeout: float = typer.Option(30.0, min=0.1, metavar="SECONDS", help="Network read timeout per URL, seconds."),
    crops: int = typer.Option(1, min=1, max=64, metavar="N", help="Also score about N tiles across each image: crops_max/mean columns."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress and no summary; errors still go to stderr."),
    retry_errors: bool = typer.Option(False, help="With --resume: scan again the inputs whose rows are errors; each new row replaces the error row."),
    fail_on_error: bool = typer.Option(False, help="Exit 2 if any input could not be scanned (for CI)."),
    ray: bool = typer.Option(False, "--ray", help="Scan on Ray Data (pip install 'ipdscan[ray]'): fetch, decode and crop in Ray tasks, score in Ray actors, the report written here. Starts a local Ray instance unless --ray-address says which cluster to join."),
    ray_address: Optional[str] = typer.Option(None, metavar="ADDRESS", help="With --ray: the cluster to join: auto (the one `ray start` runs here, or RAY_ADDRESS), HOST:PORT or ray://HOST:10001. Default: start a local instance."),
    ray_actors: Optional[int] = typer.Option(None, min=1, metavar="N", help="With --ray: scoring actors (default: one per GPU in the cluster with a CUDA --device, else 1)."),
    ctx: typer.Context = None,  # passed by typer (its type says so); a default only to come after the options
):
    """Score images: the probability that each one is AI-generated.

    The report goes to --out (or stdout): jsonl and csv rows as they are scanned, other formats whole at the end;
    progress, the summary and errors go to stderr.

    \b
    Exit codes:
    0 the scan finished (an input that cannot be read is a row in the report
      and a line on stderr);
    1 flagged: --fail-on or --fail-on-evidence tripped (suppressed findings
      never count);
    2 error: a bad option or weights, an input path that does not exist, a
      report another scan is writing, an interrupted (Ctrl-C, SIGTERM) or
      crashed scan, an image the model gave no score (model_error, NaN
      output), or with --fail-on-error an input that could not be scanned.
    An error wins over a flag.
    """
    from .suppress import SuppressionError, Suppressions
    try:  # what the arguments alone decide, before torch loads: a mistake there is answered at once
        target = report_target(out)
        format_of(report_format, target)
        shard_range = parse_shard(shard)
        given = [name for name in ("ray_address", "ray_actors")
                 if getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"]
        if given and not ray:  # from a config file or IPDSCAN_RAY_*, they wait for a --ray
            raise UsageError("--ray-address and --ray-actors go with --ray")
        suppressions = Suppressions.load(inputs, ignore_file, baseline)
    except (UsageError, FormatError, SuppressionError) as exc:
        raise fail(str(exc))
    from .distributed import ScanGroup
    from .fetch import FetchOptions
    from .job import JobError, ScanJob
    from .pipeline import ScanOptions
    from .publish import ReportError
    from .ray_scan import RayOptions
    from .report_lock import ReportBusy
    from .score import DeviceError, load_detector
    from .weights import WeightsError
    try:
        options = ScanOptions(batch_size=batch_size, workers=workers, hidden=hidden, null=null, threshold=threshold,
                              shard=shard_range, crops=crops, decode=decode,
                              fetch=FetchOptions(max_bytes=int(max_mb * 2**20), read_timeout=timeout,
                                                 allow_private=allow_private_urls))
        warn_about_workers(workers)
        job = ScanJob(inputs, options, out=target, format=report_format, resume=resume, retry_errors=retry_errors,
                      fail_on=fail_on, fail_on_evidence=fail_on_evidence, fail_on_error=fail_on_error,
                      group=ScanGroup.from_env(), stdin=sys.stdin, suppressions=suppressions,
                      ray=RayOptions(address=ray_address, actors=ray_actors) if ray else None)
        ctx.with_resource(job)  # the report's lock, held until the command ends: a second scan never touches it
        detector = load_detector(weights, job.device(device), precision)
        if variant and variant != detector.variant:
            raise UsageError(f"--variant {variant} does not match the weights, which are {detector.variant}")
    except (UsageError, WeightsError, DeviceError, ValueError, ReportBusy, ReportError) as exc:
        raise fail(str(exc))
    try:
        header = job.start(detector, threshold_source="weights" if threshold is None else "--threshold")
    except (OSError, ValueError) as exc:
        raise fail(str(exc))
    with ScanProgress(quiet) as progress:
        if "-" not in inputs:
            progress.count_in_background(job.items())
        try:
            outcome = job.run(on_result=print_input_error, on_batch=progress.update)
        except JobError as exc:
            raise fail(str(exc))
    if job.format == TABLE:
        stdout.print(result_table(outcome.rows))
    shown_out = None if job.format == TABLE else "stdout" if job.out == STDOUT else str(job.out)
    if not quiet:
        print_summary(outcome.stats, header.threshold, shown_out)
    if outcome.stopped_by:
        raise fail(f"scan {outcome.stopped_by} after {outcome.stats.scanned} images"
                   + (f"; {job.report_path} holds them" if shown_out and job.out != STDOUT else ""))
    for warning in outcome.warnings:
        print_warning(warning)
    if outcome.verdict.code == EXIT_ERROR:
        raise fail(outcome.verdict.reason)
    if outcome.verdict.code:
        raise typer.Exit(outcome.verdict.code)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False)
def train(ctx: typer.Context):
    """Train IPD-Net on CNNSpot/GenImage-style folders (the paper's recipe). See `ipdscan train --help`."""
    from .train.__main__ import main as train_main  # torch training code loads only when asked for
    raise typer.Exit(train_main(ctx.args, prog="ipdscan train"))


@app.command("eval", epilog="""\b
Examples:
  ipdscan eval /data/cnnspot_test /data/GenImage --weights best.pt --out table.md --group
  ipdscan eval data/dev-eval --perturb jpeg=95,75,50 --perturb blur=1,2 --plot robustness.png""")
@failures_exit_2
def evaluate_command(
    roots: list[Path] = typer.Argument(..., metavar="ROOT", help="Folders holding 0_real/1_fake or nature/ai sets, at any depth."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", metavar="FILE", help="Checkpoint instead of the shipped default."),
    device: str = typer.Option("auto", metavar="DEVICE", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(32, min=1, max=4096, metavar="N", help="Images per model call."),
    workers: Optional[int] = typer.Option(None, min=0, metavar="N", help="Decoding processes (default: 1 on CPU, up to 16 on CUDA)."),
    precision: Literal[PRECISIONS] = typer.Option("auto", help="Model arithmetic (see scan --help)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="FILE", help="Table file: .md, .csv or .json."),
    group: bool = typer.Option(False, help="Add a mean row per dataset root (Table III style)."),
    scores: Optional[Path] = typer.Option(None, metavar="FILE", help="Write every image's score to this CSV."),
    perturb: Optional[list[str]] = typer.Option(None, metavar="KIND=V,...", help="Re-score under jpeg=Q,..., blur=SIGMA,..., resize=FACTOR,..."),
    plot: Optional[Path] = typer.Option(None, metavar="FILE", help="With --perturb: AP-vs-strength plot (.png)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
):
    """Per-generator AP, accuracy, real and fake accuracy, computed as CNNDetection's validate.py."""
    from .datasets import DatasetError
    from .score import DeviceError, load_detector
    from .weights import WeightsError
    from .eval_report import plot_robustness, to_markdown, write_report
    from .evaluate import evaluate
    from .perturbations import parse_perturbations
    try:
        if out is not None and out.suffix.lower() not in (".md", ".csv", ".json"):
            raise UsageError(f"unsupported table format {out.suffix or out.name!r}: use .md, .csv or .json")
        if plot is not None and not perturb:
            raise UsageError("--plot draws AP against perturbation strength: give --perturb too")
        for path in (out, scores, plot):
            if path is not None:
                check_output_folder(path)
        perturbations = parse_perturbations(perturb or [])
        warn_about_workers(workers)
        detector = load_detector(weights, device, precision)
        report = evaluate(roots, detector, batch_size=batch_size, workers=workers, perturbations=perturbations,
                          scores_out=scores, progress=not quiet)
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


def check_rewrite(sources: list[Path], out: Path, what: str) -> None:
    """For merge and report, before reading anything: every source exists and --out would overwrite none."""
    from .report import check_report_path
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise UsageError(f"no such report: {missing[0]}")
    if out.resolve() in {p.resolve() for p in sources}:
        raise UsageError(f"--out {out} is {what}")
    check_report_path(out)


@app.command(epilog="\b\nExample:\n  ipdscan merge shard-*.jsonl --out all.csv --expect ./photos")
@failures_exit_2
def merge(
    parts: list[Path] = typer.Argument(..., metavar="PART", help=".jsonl (or .csv) reports written by `ipdscan scan --shard K/N`.", show_default=False),
    out: Path = typer.Option(..., "--out", "-o", metavar="FILE", help=f"The combined report: {REPORT_SUFFIXES}."),
    expect: Optional[list[str]] = typer.Option(None, metavar="INPUT", help="The scan's inputs (repeatable): each must have a row."),
    hidden: bool = typer.Option(False, help="With --expect: the scan included hidden files."),
    allow_duplicates: bool = typer.Option(False, help="Keep the first row of an input found twice instead of failing."),
):
    """Combine sharded scan reports into one, checking for duplicates and gaps."""
    from .job import utc_now
    from .merge import MergeError, merge_reports
    from .pipeline import ScanOptions, selected_items
    try:
        check_rewrite(parts, out, "one of the parts")
        expected = (item.shown for item in selected_items(expect, ScanOptions(hidden=hidden))) if expect else None
        header = {"tool": "ipdscan", "version": __version__, "merged_at": utc_now()}
        stats = merge_reports(parts, out, header, expected, allow_duplicates=allow_duplicates)
    except (UsageError, MergeError, OSError, ValueError) as exc:
        raise fail(str(exc))
    stderr.print(f"merged {stats.rows} rows from {stats.parts} parts into {shown(out)}", highlight=False)


@app.command(epilog="\b\nExample:\n  ipdscan report scan.jsonl --out scan.html")
@failures_exit_2
def report(
    source: Path = typer.Argument(..., metavar="REPORT", help="A .jsonl or .csv report from scan or merge, its header file beside it.", show_default=False),
    out: Path = typer.Option(..., "--out", "-o", metavar="FILE", help=f"The report to write: .html (a page to look at), or any of {REPORT_SUFFIXES}."),
):
    """Write an existing report again in another format, e.g. as the HTML page; model and threshold come from
    its header file. Thumbnails are made from the files the rows name, relative to the current directory."""
    from .job import utc_now
    from .merge import MergeError, merge_reports
    from .report import read_header
    try:
        check_rewrite([source], out, "the report being read")
        stats = merge_reports([source], out, {**(read_header(source) or {}), "rendered_at": utc_now()})
    except (UsageError, MergeError, OSError, ValueError) as exc:
        raise fail(str(exc))
    stderr.print(f"wrote {stats.rows} rows from {shown(source)} to {shown(out)}", highlight=False)


@app.command(epilog="\b\nExample:\n  ipdscan explain suspect.jpg --out suspect-heat.png --tiles 24")
@failures_exit_2
def explain(
    image: Path = typer.Argument(..., metavar="IMAGE", help="One image file."),
    out: Path = typer.Option(..., "--out", "-o", metavar="FILE", help="Heatmap PNG: the image with tile scores blended in."),
    tiles: int = typer.Option(16, min=1, max=256, metavar="N", help="About how many tiles to score."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", metavar="FILE", help="Checkpoint instead of the shipped default."),
    device: str = typer.Option("auto", metavar="DEVICE", help="auto, cpu, cuda or cuda:N."),
):
    """Show where in an image the detector reacts: per-tile scores and a heatmap."""
    from .decode import DecodeError
    from .explain import explain as explain_image, heatmap, read_image_file
    from .fetch import FetchError
    from .score import DeviceError, load_detector
    from .weights import WeightsError
    try:
        if out.suffix.lower() != ".png":
            raise UsageError(f"--out must be a .png file, not {out.name}")
        check_output_folder(out)
        tile_map = explain_image(load_detector(weights, device), read_image_file(image), tiles)
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


@app.command("config")
@failures_exit_2
def config_command(ctx: typer.Context):
    """Show the settings `ipdscan scan` starts from, and where each comes from.

    Flags on scan's command line win over IPDSCAN_<OPTION> variables, which win
    over the nearest ipdscan.toml or [tool.ipdscan] in pyproject.toml (looked
    for from the current directory upwards), which win over the defaults. The
    output is TOML: the set lines can be pasted into ipdscan.toml.
    """
    try:
        found = settings(ctx.parent.command.commands["scan"])
    except ConfigError as exc:
        raise fail(str(exc))
    lines = [(f"{name} = {show_value(setting.value)}" if setting.value is not None else f"# {name} =", setting.source)
             for name, setting in found.items()]
    width = max(len(line) for line, _ in lines)
    for line, source in lines:
        stdout.print(f"{shown(line):<{width}}  # {shown(source)}", highlight=False)


def main() -> None:
    """Console-script entry: anything unexpected is exit 2, never 1 (which means "suspect found")."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt as exc:
        sys.exit(fail(str(exc) or "interrupted").exit_code)
    except Exception as exc:  # noqa: BLE001 - the boundary: one line, not a traceback
        sys.exit(fail(f"{type(exc).__name__}: {exc}").exit_code)
