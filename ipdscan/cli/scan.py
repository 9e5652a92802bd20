"""`ipdscan scan`: the options, what the arguments alone decide before any model code loads, then a
``job.ScanJob`` run with progress, the summary and the exit code."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, Optional

import typer

from ..choices import BACKEND_CHOICES, DECODE_CHOICES, EXIT_ERROR, PRECISIONS
from ..reports.output_format import FORMAT_NAMES, STDOUT, TABLE, format_of, report_target
from ..scanning.shards import parse_shard
from .console import ScanProgress, print_flagged, print_input_error, print_summary, print_warning, result_table, stdout
from .support import REPORT_SUFFIXES, UsageError, fail, failures_exit_2, warn_about_workers

MAX_MB = 1 << 20  # --max-mb's ceiling (1 TiB): keeps "inf" and huge values from overflowing the byte count
EPILOG = """\b
Examples:
  ipdscan scan ./photos --out report.csv
  ipdscan scan urls.txt --out report.jsonl --resume
  ipdscan scan assets/ --format jsonl --out - | jq -r .score
  find . -name '*.png' | ipdscan scan - --fail-on 0.9 --quiet
  find . -name '*.png' -print0 | ipdscan scan - -0 --out report.csv
  ipdscan scan /archive --ray --ray-address auto --out archive.jsonl --resume

Settings also come from IPDSCAN_<OPTION> variables and from a config file: the
nearest ipdscan.toml or pyproject.toml [tool.ipdscan] (which may not set out,
weights, allow-private-urls, shard, max-mb, hidden or exclude), or one named
before the command, trusted in full: ipdscan --config FILE scan ... (see
`ipdscan config`)."""


@failures_exit_2
def scan(
    inputs: list[str] = typer.Argument(..., metavar="INPUT", help="Image files, directories, URL lists (.txt/.csv), http(s) URLs, or - for stdin.", show_default=False),
    out: Optional[str] = typer.Option(None, "--out", "-o", metavar="FILE", help=f"Report file ({REPORT_SUFFIXES}: the extension picks the format), or - for stdout. Default: a table on stdout."),
    report_format: Optional[Literal[FORMAT_NAMES]] = typer.Option(None, "--format", "-f", help="Report format, whatever the --out extension; without --out, the report goes to stdout."),
    ignore_file: Optional[Path] = typer.Option(None, metavar="FILE", help="Suppression rules: sha256:HEX or a path glob per line, each with an optional '# reason', for the files below its folder. Default: each file's .ipdscanignore files, its folder's and those above it up to the current directory."),
    baseline: Optional[Path] = typer.Option(None, metavar="REPORT", help="An earlier ipdscan .jsonl, .json or .sarif report: the files it reported as findings (labelled ai, or declaring AI) are not new findings."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", metavar="FILE", help="Checkpoint to use instead of the shipped default."),
    variant: Optional[str] = typer.Option(None, metavar="VARIANT", help="Expected model variant (layer2/layer3/layer4); an error if the weights differ."),
    device: str = typer.Option("auto", metavar="DEVICE", help="auto (CUDA when present), cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(32, min=1, max=4096, metavar="N", help="Images per model call."),
    workers: Optional[int] = typer.Option(None, min=0, metavar="N", help="Decoding processes (default: 1 on CPU; on CUDA up to 8, or 16 with --decode workers)."),
    decode: Literal[DECODE_CHOICES] = typer.Option("auto", help="Where JPEGs are decoded: device (nvjpeg batches on the GPU), workers (Pillow), auto (device on CUDA)."),
    precision: Literal[PRECISIONS] = typer.Option("auto", help="Model arithmetic: auto (mixed for layer2 where bf16 is native, else fp32), fp32, mixed or bf16."),
    backend: Literal[BACKEND_CHOICES] = typer.Option("auto", help="What scores: torch (pip install 'ipdscan[gpu]'), onnxruntime (CPU, from the .onnx beside the weights), auto (torch on CUDA, else onnxruntime where that .onnx exists, else torch)."),
    threshold: Optional[float] = typer.Option(None, min=0.0, max=1.0, metavar="T", help="Score at or above which an image is labelled ai. Default: the weights' own calibrated threshold (0.5 for uncalibrated weights)."),
    fail_on: Optional[float] = typer.Option(None, min=0.0, max=1.0, metavar="S", help="Exit 1 if any image scores at or above this."),
    fail_on_evidence: bool = typer.Option(False, help="Exit 1 if any file's metadata declares AI generation."),
    hidden: bool = typer.Option(False, help="Include hidden files and directories."),
    exclude: Optional[list[str]] = typer.Option(None, "--exclude", metavar="GLOB", help="Skip the local files GLOB matches entirely: never read, no row in the report (an ignore rule keeps the row and only suppresses its finding). Without a '/', on the file name; with one, on the path from the current directory; '*' crosses folders. Repeatable."),
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
      never count); the last line names the files;
    2 error: a bad option or weights, an input path that does not exist, a
      report another scan is writing, an interrupted (Ctrl-C, SIGTERM) or
      crashed scan, an image the model gave no score (model_error, NaN
      output), a run in which every input failed, or with --fail-on-error
      an input that could not be scanned.
    An error wins over a flag.
    """
    from ..reports.suppress import Exclusions, SuppressionError, Suppressions
    from .config_file import ConfigError, header_settings, ignored_warning, narrowed_warning, used_settings
    try:
        used = used_settings(ctx)
    except ConfigError as exc:
        raise fail(str(exc))
    if warning := ignored_warning(used):
        print_warning(warning)
    try:  # what the arguments alone decide, before the model code loads: a mistake there is answered at once
        target = report_target(out)
        format_of(report_format, target)
        shard_range = parse_shard(shard) if shard else None
        given = [name for name in ("ray_address", "ray_actors")
                 if getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"]
        if given and not ray:  # from a config file or IPDSCAN_RAY_*, they wait for a --ray
            raise ValueError("--ray-address and --ray-actors go with --ray")
        suppressions = Suppressions(inputs, ignore_file, baseline)
        Exclusions(exclude or ())  # a glob that is not one is an error now
    except (ValueError, SuppressionError) as exc:  # FormatError is a ValueError
        raise fail(str(exc))
    from ..model.backends import load_backend
    from ..model.runtime import DeviceError
    from ..model.weights import WeightsError
    from ..reports.lock import ReportBusy
    from ..reports.publish import ReportError, discard_stdout
    from ..scanning.fetch_options import FetchOptions
    from ..scanning.job import JobError, ScanJob
    from ..scanning.options import ScanOptions
    from ..scanning.ray_scan import RayOptions
    from ..scanning.scan_group import ScanGroup
    try:
        options = ScanOptions(batch_size=batch_size, workers=workers, hidden=hidden, null=null, threshold=threshold,
                              shard=shard_range, crops=crops, decode=decode, backend=backend,
                              exclude=tuple(exclude or ()),
                              fetch=FetchOptions(max_bytes=int(max_mb * 2**20), read_timeout=timeout,
                                                 allow_private=allow_private_urls))
        warn_about_workers(workers)
        job = ScanJob(inputs, options, out=target, format=report_format, resume=resume, retry_errors=retry_errors,
                      fail_on=fail_on, fail_on_evidence=fail_on_evidence, fail_on_error=fail_on_error,
                      group=ScanGroup.from_env(), stdin=sys.stdin, suppressions=suppressions,
                      ray=RayOptions(address=ray_address, actors=ray_actors) if ray else None,
                      settings=header_settings(used))
        ctx.with_resource(job)  # the report's lock, held until the command ends: a second scan never touches it
        detector = load_backend(weights, job.device(device), precision, job.backend)
        if variant and variant != detector.variant:
            raise UsageError(f"--variant {variant} does not match the weights, which are {detector.variant}")
    except (UsageError, WeightsError, DeviceError, ValueError, ReportBusy, ReportError) as exc:
        raise fail(str(exc))
    try:
        header = job.start(detector)
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
        try:
            stdout.print(result_table(outcome.rows))
        except BrokenPipeError:  # `ipdscan scan x | head -1`
            discard_stdout()
    shown_out = None if job.format == TABLE else "stdout" if job.out == STDOUT else str(job.out)
    if not quiet:
        print_summary(outcome.stats, header.threshold, shown_out)
    if outcome.stopped_by:
        raise fail(f"scan {outcome.stopped_by} after {outcome.stats.scanned} images"
                   + (f"; {job.report_path} holds them" if shown_out and job.out != STDOUT else ""))
    for warning in [*outcome.warnings, narrowed_warning(ctx.command, used)]:
        if warning:
            print_warning(warning)
    if outcome.verdict.code == EXIT_ERROR:
        raise fail(outcome.verdict.reason)
    if outcome.verdict.code:
        print_flagged(outcome.verdict.reason)
        raise typer.Exit(outcome.verdict.code)
