"""The command line: a thin typer layer over the library. Exit codes: 0 clean, 1 --fail-on tripped, 2 error."""
from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from . import __version__
from .console import ScanProgress, ScanStats, print_summary, result_table, stderr, stdout
from .fetch import FetchOptions
from .pipeline import ScanOptions, scan_batches, selected_items
from .report import REPORT_FORMATS, completed_inputs, open_report
from .score import DeviceError, load_detector
from .weights import WeightsError

EXIT_OK, EXIT_FLAGGED, EXIT_ERROR = 0, 1, 2

app = typer.Typer(
    help="Flag AI-generated images in folders and URL lists with IPD-Net.",
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit 2."""


def fail(message: str) -> typer.Exit:
    stderr.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(EXIT_ERROR)


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
def scan(
    inputs: list[str] = typer.Argument(..., help="Image files, directories, URL lists (.txt/.csv), http(s) URLs, or - for stdin."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report file: .csv, .jsonl or .json. Default: a table on stdout."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Checkpoint to use instead of the shipped default."),
    variant: Optional[str] = typer.Option(None, help="Expected model variant (layer2/layer3/layer4); an error if the weights differ."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(32, min=1, max=4096, help="Images per model call."),
    workers: Optional[int] = typer.Option(None, min=0, help="Decoding processes (default: 1 on CPU, up to 16 on CUDA)."),
    threshold: float = typer.Option(0.5, min=0.0, max=1.0, help="Score at or above which an image is labelled ai."),
    fail_on: Optional[float] = typer.Option(None, min=0.0, max=1.0, help="Exit 1 if any image scores at or above this."),
    hidden: bool = typer.Option(False, help="Include hidden files and directories."),
    resume: bool = typer.Option(False, help="With a .jsonl --out: skip inputs already in it and append the rest."),
    shard: Optional[str] = typer.Option(None, help="K/N: scan only the K-th of N deterministic partitions of the inputs."),
    allow_private_urls: bool = typer.Option(False, help="Allow URLs on loopback/private addresses (intranets, tests)."),
    max_mb: float = typer.Option(50.0, min=0.001, help="Largest file or download accepted, in MB."),
    timeout: float = typer.Option(30.0, min=0.1, help="Network read timeout per URL, seconds."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress and no summary; errors still go to stderr."),
):
    """Score images: the probability that each one is AI-generated."""
    try:
        options = ScanOptions(batch_size=batch_size, workers=workers, threshold=threshold, hidden=hidden,
                              shard=parse_shard(shard),
                              fetch=FetchOptions(max_bytes=int(max_mb * 2**20), read_timeout=timeout,
                                                 allow_private=allow_private_urls))
        if out is not None and out.suffix.lower() not in REPORT_FORMATS:
            raise UsageError(f"unsupported report format {out.suffix or out.name!r}: use {', '.join(REPORT_FORMATS)}")
        if resume:
            if out is None or out.suffix.lower() != ".jsonl":
                raise UsageError("--resume needs --out FILE.jsonl")
            done = completed_inputs(out) if out.exists() else set()
            options.skip = done.__contains__
        if out is not None and not out.parent.exists():
            raise UsageError(f"cannot write {out}: directory {out.parent} does not exist")
        detector = load_detector(weights, device)
        if variant and variant != detector.variant:
            raise UsageError(f"--variant {variant} does not match the weights, which are {detector.variant}")
    except (UsageError, WeightsError, DeviceError) as exc:
        raise fail(str(exc))

    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    header = {"tool": "ipdscan", "version": __version__, "model": detector.name, "variant": detector.variant,
              "weights_sha256": detector.sha256, "threshold": threshold, "device": str(detector.device),
              "start_time": started, "inputs": inputs}
    writer = open_report(out, header, resume=resume) if out else None
    stats, shown = ScanStats(), []
    interrupted = False
    with ScanProgress(quiet) as progress:
        if "-" not in inputs:
            progress.count_in_background(selected_items(inputs, options))
        try:
            for batch in scan_batches(inputs, detector, options=options, stdin=sys.stdin):
                for result in batch:
                    stats.add(result)
                    if writer:
                        writer.write(result)
                    else:
                        shown.append(result)
                if writer:
                    writer.flush()
                progress.update(stats)
        except KeyboardInterrupt:
            interrupted = True
    summary = {"end_time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "interrupted": interrupted,
               **stats.to_dict()}
    if writer:
        writer.close(summary)
    else:
        stdout.print(result_table(shown))
    if not quiet:
        print_summary(stats, threshold, str(out) if out else None)
    if interrupted:
        raise fail(f"interrupted after {stats.scanned} images" + (f"; {out} holds them" if out else ""))
    if fail_on is not None and stats.max_score is not None and stats.max_score >= fail_on:
        raise typer.Exit(EXIT_FLAGGED)


def main() -> None:
    """Console-script entry: anything unexpected is exit 2, never 1 (which means "suspect found")."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        stderr.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the boundary: one line, not a traceback
        stderr.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}", highlight=False)
        sys.exit(EXIT_ERROR)
