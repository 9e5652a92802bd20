"""Report writers, chosen by --format or the --out extension (``output_format``): .csv (``csv_report``), .jsonl and
.json (``json_report``), .sarif (``sarif``) or .html (``html_report``), one row per Result; to a file, or to standard output (``--out -``: .jsonl and .csv rows as they come, .json,
.sarif and .html whole at the end).

Columns and keys are ``result.FIELDS`` in order; a missing value is an empty CSV cell or JSON null.

- .jsonl is one JSON object per image and is made durable at every ``flush()`` (after each batch),
  so a killed scan loses at most the batch in flight and ``--resume`` carries on from it.
- .csv and .json only appear under their final name at ``close()``: rows go to an anonymous
  temporary file beside the report and are copied into place then, so an interrupted scan never
  leaves a half-written report (nor a stray temporary file, unless killed during close).

In .csv only, text cells that a spreadsheet would run as a formula (a leading ``= + - @``, tab or CR: file
names, URL-list lines, EXIF text, error messages quoting them) get a leading ``'``, OWASP's rule against CSV
injection; numbers are untouched, and JSON keeps every value exact.

Text that is not valid Unicode (file names that are not UTF-8, which Python carries as lone
surrogates) is written with its undecodable bytes as ``\\xNN`` escapes, in every format, reversibly: see
``report_text``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ..scanning.result import Result
from .csv_report import CsvReport
from .json_report import JsonlReport, JsonReport
from .output_format import FORMATS, check_resumable, suffix_format
from .publish import ReportError, check_output_folder
from .sarif import SarifWriter

REPORT_FORMATS = tuple(spec.suffix for spec in FORMATS.values())


class ReportWriter(Protocol):
    def write(self, result: Result) -> None: ...

    def flush(self) -> None: ...  # called after every batch

    def close(self, summary: dict) -> None: ...  # summary: end_time, counts, wall time, ...


def open_report(path: Path, header: dict, *, format: str | None = None, resume: bool = False,
                retry_errors: bool = False, root: Path | None = None) -> ReportWriter:
    """A writer for ``path`` (``output_format.STDOUT``: standard output) in ``format``, by default the one its
    extension names; ``header`` describes the scan (tool, model, start time, ...).

    ``retry_errors`` (with ``resume``): rows written for inputs that already have a row replace those rows,
    in their place, when the writer closes. ``root`` is the folder SARIF artifact URIs are relative to
    (default: the current directory).
    """
    path = Path(path)
    format = check_report_path(path, format)
    if resume:
        check_resumable(path, format)
    try:
        if format == "jsonl":
            return JsonlReport(path, header, resume=resume, retry_errors=retry_errors)
        if format == "sarif":
            return SarifWriter(path, header, root=root, threshold=header.get("threshold"))
        if format == "html":
            from .html_report import HtmlReport  # Jinja2 loads only for the page that needs it
            return HtmlReport(path, header)
        return CsvReport(path, header) if format == "csv" else JsonReport(path, header)
    except OSError as exc:
        raise ReportError(path, exc) from exc


def check_report_path(path: Path, format: str | None = None) -> str:
    """Refuse, before a scan starts, a report of an unknown format (ValueError) or in no folder (FileNotFoundError);
    returns the format: ``format``, or the one the extension names."""
    format = format or suffix_format(path)
    check_output_folder(path)
    return format


