"""`ipdscan merge` and `ipdscan report`: reports read back, checked, and written again (combined, or in another
format)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .. import __version__
from .console import shown, stderr
from .support import REPORT_SUFFIXES, UsageError, fail, failures_exit_2

MERGE_EPILOG = "\b\nExample:\n  ipdscan merge shard-*.jsonl --out all.csv --expect ./photos"
REPORT_EPILOG = "\b\nExample:\n  ipdscan report scan.jsonl --out scan.html"


def check_rewrite(sources: list[Path], out: Path, what: str) -> None:
    """For merge and report, before reading anything: every source exists and --out would overwrite none."""
    from ..reports.publish import overwritten_input
    from ..reports.writers import check_report_path
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise UsageError(f"no such report: {missing[0]}")
    if overwritten_input(out, sources) is not None:  # by device and inode: a hard link is the same file
        raise UsageError(f"--out {out} is {what}")
    check_report_path(out)


@failures_exit_2
def merge(
    parts: list[Path] = typer.Argument(..., metavar="PART", help=".jsonl (or .csv) reports written by `ipdscan scan --shard K/N`.", show_default=False),
    out: Path = typer.Option(..., "--out", "-o", metavar="FILE", help=f"The combined report: {REPORT_SUFFIXES}."),
    expect: Optional[list[str]] = typer.Option(None, metavar="INPUT", help="The scan's inputs (repeatable): each must have a row."),
    hidden: bool = typer.Option(False, help="With --expect: the scan included hidden files."),
    allow_duplicates: bool = typer.Option(False, help="Keep the first row of an input found twice instead of failing."),
):
    """Combine sharded scan reports into one, checking for duplicates and gaps."""
    from ..reports.header import utc_now
    from ..reports.merge import MergeError, merge_reports
    from ..scanning.options import ScanOptions
    from ..scanning.sources import selected_items
    try:
        check_rewrite(parts, out, "one of the parts")
        expected = (item.redacted for item in selected_items(expect, ScanOptions(hidden=hidden))) if expect else None
        header = {"tool": "ipdscan", "version": __version__, "merged_at": utc_now()}
        stats = merge_reports(parts, out, header, expected, allow_duplicates=allow_duplicates)
    except (UsageError, MergeError, OSError, ValueError) as exc:
        raise fail(str(exc))
    stderr.print(f"merged {stats.rows} rows from {stats.parts} parts into {shown(out)}", highlight=False)


@failures_exit_2
def report(
    source: Path = typer.Argument(..., metavar="REPORT", help="A .jsonl or .csv report from scan or merge, its header file beside it.", show_default=False),
    out: Path = typer.Option(..., "--out", "-o", metavar="FILE", help=f"The report to write: .html (a page to look at), or any of {REPORT_SUFFIXES}."),
):
    """Write an existing report again in another format, e.g. as the HTML page; model and threshold come from
    its header file. Thumbnails are made from the files the rows name, relative to the current directory."""
    from ..reports.header import utc_now
    from ..reports.header_file import read_header
    from ..reports.merge import MergeError, merge_reports
    try:
        check_rewrite([source], out, "the report being read")
        stats = merge_reports([source], out, {**(read_header(source) or {}), "rendered_at": utc_now()})
    except (UsageError, MergeError, OSError, ValueError) as exc:
        raise fail(str(exc))
    stderr.print(f"wrote {stats.rows} rows from {shown(source)} to {shown(out)}", highlight=False)
