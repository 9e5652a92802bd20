"""The command line: a thin typer layer over the library. Exit codes: 0 clean, 1 --fail-on tripped, 2 error."""
from __future__ import annotations

import functools
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from . import __version__
from .console import (ScanProgress, ScanStats, print_input_error, print_summary, print_warning, printable,
                      result_table, shown, stderr, stdout)
from .distributed import ScanGroup
from .fetch import FetchError, FetchOptions
from .interrupt import interrupts_deferred, sigterm_as_interrupt
from .merge import MergeError, merge_reports
from .pipeline import DECODE_CHOICES, ScanOptions, scan_batches, selected_items
from .publish import ReportError
from .report import REPORT_FORMATS, completed_inputs, header_path, open_report
from .report_lock import ReportBusy, ReportLock
from .score import DeviceError, load_detector
from .sources import redact_credentials
from .verdict import EXIT_ERROR, missing_paths, run_warnings, verdict
from .weights import WeightsError

MAX_MB = 1 << 20  # --max-mb's ceiling (1 TiB): keeps "inf" and huge values from overflowing the byte count

app = typer.Typer(
    help="Flag AI-generated images in folders and URL lists with IPD-Net.",
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
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
    if value:
        stdout.print(f"ipdscan {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                      help="Show the version and exit.")):
    """Flag AI-generated images in folders and URL lists with IPD-Net."""


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


@app.command(epilog="""Examples:\n\n
  ipdscan scan ./photos --out report.csv\n\n
  ipdscan scan urls.txt --out report.jsonl --resume\n\n
  find . -name '*.png' | ipdscan scan - --fail-on 0.9 --quiet""")
@failures_exit_2
def scan(
    inputs: list[str] = typer.Argument(..., help="Image files, directories, URL lists (.txt/.csv), http(s) URLs, or - for stdin."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report file: .csv, .jsonl, .json or .sarif. Default: a table on stdout."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Checkpoint to use instead of the shipped default."),
    variant: Optional[str] = typer.Option(None, help="Expected model variant (layer2/layer3/layer4); an error if the weights differ."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(32, min=1, max=4096, help="Images per model call."),
    workers: Optional[int] = typer.Option(None, min=0, help="Decoding processes (default: 1 on CPU; on CUDA up to 8, or 16 with --decode workers)."),
    decode: str = typer.Option("auto", help="Where JPEGs are decoded: device (nvjpeg batches on the GPU), workers (Pillow), auto (device on CUDA)."),
    precision: str = typer.Option("auto", help="Model arithmetic: auto (mixed for layer2 where bf16 is native, else fp32), fp32, mixed or bf16."),
    threshold: Optional[float] = typer.Option(None, min=0.0, max=1.0, help="Score at or above which an image is labelled ai. Default: the weights' own calibrated threshold (0.5 for uncalibrated weights)."),
    fail_on: Optional[float] = typer.Option(None, min=0.0, max=1.0, help="Exit 1 if any image scores at or above this."),
    fail_on_evidence: bool = typer.Option(False, help="Exit 1 if any file's metadata declares AI generation."),
    hidden: bool = typer.Option(False, help="Include hidden files and directories."),
    resume: bool = typer.Option(False, help="With a .jsonl --out: skip inputs already in it and append the rest."),
    shard: Optional[str] = typer.Option(None, help="K/N: scan only the K-th of N deterministic partitions of the inputs."),
    allow_private_urls: bool = typer.Option(False, help="Allow URLs on loopback/private addresses (intranets, tests)."),
    max_mb: float = typer.Option(50.0, min=0.001, max=MAX_MB, help="Largest file or download accepted, in MB."),
    timeout: float = typer.Option(30.0, min=0.1, help="Network read timeout per URL, seconds."),
    crops: int = typer.Option(1, min=1, max=64, help="Also score about N tiles across each image: crops_max/mean columns."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress and no summary; errors still go to stderr."),
    retry_errors: bool = typer.Option(False, help="With --resume: scan again the inputs whose rows are errors; each new row replaces the error row."),
    fail_on_error: bool = typer.Option(False, help="Exit 2 if any input could not be scanned (for CI)."),
    ctx: typer.Context = None,  # passed by typer (its type says so); a default only to come after the options
):
    """Score images: the probability that each one is AI-generated.

    Exit codes:
    0 the scan finished (an input that cannot be read is a row in the report and a line on stderr);
    1 flagged: --fail-on or --fail-on-evidence tripped;
    2 error: a bad option or weights, an input path that does not exist, a report another scan is writing,
    an interrupted (Ctrl-C, SIGTERM) or crashed scan, or with --fail-on-error an input that could not be scanned.
    An error wins over a flag.
    """
    group = ScanGroup.from_env()  # set when launched by torchrun
    try:
        if decode not in DECODE_CHOICES:
            raise UsageError(f"unknown --decode {decode!r}: use {', '.join(DECODE_CHOICES)}")
        options = ScanOptions(batch_size=batch_size, workers=workers, hidden=hidden,
                              shard=parse_shard(shard), crops=crops, decode=decode,
                              fetch=FetchOptions(max_bytes=int(max_mb * 2**20), read_timeout=timeout,
                                                 allow_private=allow_private_urls))
        if out is not None and out.suffix.lower() not in REPORT_FORMATS:
            raise UsageError(f"unsupported report format {out.suffix or out.name!r}: use {', '.join(REPORT_FORMATS)}")
        if out is not None and not out.parent.exists():
            raise UsageError(f"cannot write {out}: directory {out.parent} does not exist")
        report_path = out
        if retry_errors and not resume:
            raise UsageError("--retry-errors rescans the error rows of a report: use it with --resume --out FILE.jsonl")
        if group:
            if out is None or shard:
                raise UsageError("a torchrun scan needs --out and shards by rank itself (no --shard)")
            options.shard, device, report_path = group.shard, group.device(device), group.part(out)
        if report_path:  # held until the command ends: refused here, a second scan never touches the report
            ctx.with_resource(ReportLock(report_path))
        if resume:
            if out is None or out.suffix.lower() != ".jsonl":
                raise UsageError("--resume needs --out FILE.jsonl")
            done = completed_inputs(report_path, retry_errors) if report_path.exists() else set()
            options.skip = done.__contains__
        missing = missing_paths(inputs)
        detector = load_detector(weights, device, precision)
        if variant and variant != detector.variant:
            raise UsageError(f"--variant {variant} does not match the weights, which are {detector.variant}")
        options.threshold = detector.threshold if threshold is None else threshold
    except (UsageError, WeightsError, DeviceError, ValueError, ReportBusy, ReportError) as exc:
        raise fail(str(exc))

    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    header = {"tool": "ipdscan", "version": __version__, "model": detector.name, "variant": detector.variant,
              "weights_sha256": detector.sha256, "threshold": options.threshold,
              "threshold_source": "weights" if threshold is None else "--threshold", "device": str(detector.device),
              "start_time": started, "inputs": [redact_credentials(argument) for argument in inputs]}
    sarif_root = Path(inputs[0]) if len(inputs) == 1 and Path(inputs[0]).is_dir() else Path.cwd()
    try:
        writer = open_report(report_path, header, resume=resume, retry_errors=retry_errors,
                             root=sarif_root) if report_path else None
    except (OSError, ValueError) as exc:
        raise fail(str(exc))
    stats, table_rows = ScanStats(), []
    stopped_by: str | None = None  # why the scan ended early; what was scanned is still written
    try:
        with ScanProgress(quiet) as progress:
            if "-" not in inputs:
                progress.count_in_background(selected_items(inputs, options))
            for batch in scan_batches(inputs, detector, options=options, stdin=sys.stdin):
                with interrupts_deferred():  # a batch's rows are written whole
                    for result in batch:
                        stats.add(result)
                        if not result.ok:
                            print_input_error(result)
                        if writer:
                            writer.write(result)
                        else:
                            table_rows.append(result)
                    if writer:
                        writer.flush()
                progress.update(stats)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (interrupt.Terminated)
        stopped_by = str(exc) or "interrupted"
    except Exception as exc:  # noqa: BLE001 - keep the rows already scanned, then report the failure
        stopped_by = f"stopped by {type(exc).__name__}: {exc}"
    summary = {"end_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "interrupted": stopped_by is not None, **stats.to_dict()}
    if writer:
        with interrupts_deferred():  # published whole; a second Ctrl-C is raised once it is
            writer.close(summary)
    else:
        stdout.print(result_table(table_rows))
    if group:
        group.wait_for_all()
        if group.rank == 0 and stopped_by is None:
            try:
                merge_reports(group.parts(out), out, header)
            except MergeError as exc:
                raise fail(f"cannot merge the ranks' parts into {out}: {exc}")
            for part in group.parts(out):
                part.unlink()
                header_path(part).unlink(missing_ok=True)
        group.finish()
    if not quiet:
        print_summary(stats, options.threshold, str(out) if out else None)
    if stopped_by:
        raise fail(f"scan {stopped_by} after {stats.scanned} images" + (f"; {report_path} holds them" if out else ""))
    for warning in run_warnings(stats):
        print_warning(warning)
    outcome = verdict(stats, missing=missing, fail_on=fail_on, fail_on_evidence=fail_on_evidence,
                      fail_on_error=fail_on_error)
    if outcome.code == EXIT_ERROR:
        raise fail(outcome.reason)
    if outcome.code:
        raise typer.Exit(outcome.code)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False)
def train(ctx: typer.Context):
    """Train IPD-Net on CNNSpot/GenImage-style folders (the paper's recipe). See `ipdscan train --help`."""
    from trainer.__main__ import main as train_main  # torch training code loads only when asked for
    raise typer.Exit(train_main(ctx.args, prog="ipdscan train"))


@app.command("eval", epilog="""Examples:\n\n
  ipdscan eval /data/cnnspot_test /data/GenImage --weights best.pt --out table.md --group\n\n
  ipdscan eval data/dev-eval --perturb jpeg=95,75,50 --perturb blur=1,2 --plot robustness.png""")
@failures_exit_2
def evaluate_command(
    roots: list[Path] = typer.Argument(..., help="Folders holding 0_real/1_fake or nature/ai sets, at any depth."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Checkpoint instead of the shipped default."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(32, min=1, max=4096),
    workers: Optional[int] = typer.Option(None, min=0, help="Decoding processes (default: 1 on CPU, up to 16 on CUDA)."),
    precision: str = typer.Option("auto", help="Model arithmetic: auto, fp32, mixed or bf16 (see scan --help)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Table file: .md, .csv or .json."),
    group: bool = typer.Option(False, help="Add a mean row per dataset root (Table III style)."),
    scores: Optional[Path] = typer.Option(None, help="Write every image's score to this CSV."),
    perturb: Optional[list[str]] = typer.Option(None, help="Re-score under jpeg=Q,..., blur=SIGMA,..., resize=FACTOR,..."),
    plot: Optional[Path] = typer.Option(None, help="With --perturb: AP-vs-strength plot (.png)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
):
    """Per-generator AP, accuracy, real and fake accuracy, computed as CNNDetection's validate.py."""
    from .evaluate import DatasetError, evaluate, parse_perturbations, plot_robustness, to_markdown, write_report
    try:
        if out is not None and out.suffix.lower() not in (".md", ".csv", ".json"):
            raise UsageError(f"unsupported table format {out.suffix or out.name!r}: use .md, .csv or .json")
        if plot is not None and not perturb:
            raise UsageError("--plot draws AP against perturbation strength: give --perturb too")
        for path in (out, scores, plot):
            if path is not None and not path.parent.exists():
                raise UsageError(f"cannot write {path}: directory {path.parent} does not exist")
        perturbations = parse_perturbations(perturb or [])
        detector = load_detector(weights, device, precision)
        report = evaluate(roots, detector, batch_size=batch_size, workers=workers, perturbations=perturbations,
                          scores_out=scores, progress=not quiet)
    except (UsageError, WeightsError, DeviceError, DatasetError, ValueError) as exc:
        raise fail(str(exc))
    stdout.print("\n".join(map(printable, to_markdown(report, group).splitlines())), highlight=False, markup=False)
    if report.unreadable:
        stderr.print(f"{len(report.unreadable)} unreadable image(s) skipped, e.g. {shown(report.unreadable[0].path)}",
                     highlight=False)
    if out:
        write_report(report, out, group)
    if plot:
        plot_robustness(report, plot)


@app.command(epilog="Example:\n\n  ipdscan merge shard-*.jsonl --out all.csv --expect ./photos")
@failures_exit_2
def merge(
    parts: list[Path] = typer.Argument(..., help=".jsonl reports written by `ipdscan scan --shard K/N`."),
    out: Path = typer.Option(..., "--out", "-o", help="The combined report: .csv, .jsonl or .json."),
    expect: Optional[list[str]] = typer.Option(None, help="The scan's inputs (repeatable): each must have a row."),
    hidden: bool = typer.Option(False, help="With --expect: the scan included hidden files."),
    allow_duplicates: bool = typer.Option(False, help="Keep the first row of an input found twice instead of failing."),
):
    """Combine sharded scan reports into one, checking for duplicates and gaps."""
    try:
        missing = [str(p) for p in parts if not p.is_file()]
        if missing:
            raise UsageError(f"no such report: {missing[0]}")
        if out.resolve() in {p.resolve() for p in parts}:
            raise UsageError(f"--out {out} is one of the parts")
        if out.suffix.lower() not in REPORT_FORMATS:
            raise UsageError(f"unsupported report format {out.suffix or out.name!r}: use {', '.join(REPORT_FORMATS)}")
        expected = (item.shown for item in selected_items(expect, ScanOptions(hidden=hidden))) if expect else None
        header = {"tool": "ipdscan", "version": __version__, "merged_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        stats = merge_reports(parts, out, header, expected, allow_duplicates=allow_duplicates)
    except (UsageError, MergeError, OSError) as exc:
        raise fail(str(exc))
    stderr.print(f"merged {stats.rows} rows from {stats.parts} parts into {shown(out)}", highlight=False)


@app.command(epilog="Example:\n\n  ipdscan explain suspect.jpg --out suspect-heat.png --tiles 24")
@failures_exit_2
def explain(
    image: Path = typer.Argument(..., help="One image file."),
    out: Path = typer.Option(..., "--out", "-o", help="Heatmap PNG: the image with tile scores blended in."),
    tiles: int = typer.Option(16, min=1, max=256, help="About how many tiles to score."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Checkpoint instead of the shipped default."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
):
    """Show where in an image the detector reacts: per-tile scores and a heatmap."""
    from .decode import DecodeError
    from .explain import explain as explain_image, heatmap, read_image_file
    try:
        if out.suffix.lower() != ".png":
            raise UsageError(f"--out must be a .png file, not {out.name}")
        if not out.parent.exists():
            raise UsageError(f"cannot write {out}: directory {out.parent} does not exist")
        tile_map = explain_image(load_detector(weights, device), read_image_file(image), tiles)
        heatmap(tile_map).save(out)
    except FetchError as exc:
        raise fail(exc.message)
    except (UsageError, WeightsError, DeviceError, DecodeError, OSError) as exc:
        raise fail(f"{image}: {exc}" if isinstance(exc, DecodeError) else str(exc))
    window = tile_map.window
    stdout.print(f"{shown(image)}: centre-crop score {tile_map.centre_score:.3f}; {len(tile_map.scores)} tiles of {window}px, "
                 f"max {max(tile_map.scores):.3f}, mean {sum(tile_map.scores) / len(tile_map.scores):.3f}", highlight=False)
    for (top, left), score in sorted(zip(tile_map.offsets, tile_map.scores), key=lambda pair: -pair[1]):
        stdout.print(f"  tile x={max(0, left)} y={max(0, top)}: {score:.3f}", highlight=False)
    stderr.print(f"heatmap written to {shown(out)}", highlight=False)


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
