"""Report writers, chosen by --format or the --out extension (``output_format``): .csv, .jsonl, .json, .sarif or
.html, one row per Result; to a file, or to standard output (``--out -``: .jsonl and .csv rows as they come, .json,
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

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from .output_format import FORMATS, STDOUT, check_resumable, suffix_format
from .publish import ReportError, Spool, StdoutText, check_output_folder, publish, publish_spooled
from .result import FIELDS, FLOAT_FIELDS, INT_FIELDS, Result, row_problem
from .sarif import SarifWriter
from .text import clean_strings, csv_cell_value, csv_text, report_bytes, report_text

REPORT_FORMATS = tuple(spec.suffix for spec in FORMATS.values())
HEADER_SUFFIX = ".header.json"
CSV_SCORE_DECIMALS = 6  # a .csv's scores are rounded to these: a score read back from one is off by half a unit
# What makes rows comparable: parts of one scan, or a scan and its --resume, must agree on all of these.
SCAN_IDENTITY = ("model", "variant", "weights_sha256", "threshold")


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


def header_path(report: Path) -> Path:
    """Where a .jsonl or .csv report's scan header lives: beside it, as <name>.header.json (they hold rows only)."""
    report = Path(report)
    return report.with_name(report.name + HEADER_SUFFIX)


def read_header(report: Path) -> dict | None:
    """The scan header kept beside a .jsonl or .csv report, or None when it has none (written by an older ipdscan)."""
    try:
        text = header_path(report).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        header = json.loads(text)
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise ValueError(f"{header_path(report)}: not an ipdscan report header")
    return header


def _publish_header(report: Path, header: dict) -> None:
    text = json.dumps(clean_strings(header, report_text), ensure_ascii=False, indent=1, default=str) + "\n"
    publish(header_path(report), lambda out: out.write(text))


def identity_mismatch(expected: dict, found: dict) -> str | None:
    """The first SCAN_IDENTITY field on which two headers differ, as "field: a vs b", or None if they agree."""
    for key in SCAN_IDENTITY:
        if expected.get(key) != found.get(key):
            return f"{key}: {expected.get(key)!r} vs {found.get(key)!r}"
    return None


def completed_inputs(path: Path, retry_errors: bool = False) -> set[str]:
    """The inputs a .jsonl report already holds, so that ``--resume`` can skip them; with ``retry_errors``,
    only those whose last row is not an error (``--retry-errors``).

    A trailing line without its newline is a write cut short: it is ignored here, and dropped
    when the report is reopened with ``resume=True``.
    """
    header = read_header(path)
    threshold = header.get("threshold") if header else None
    succeeded: dict[str, bool] = {}  # input as written -> whether its last row is not an error
    with open(path, "rb") as file:
        for number, line in enumerate(file, 1):
            if not line.endswith(b"\n"):
                break
            try:
                record = json.loads(line)
                problem = row_problem(record, threshold)  # the rule merge reads parts by
            except ValueError:
                problem = "not JSON"
            if problem:
                raise ValueError(f"{path}, line {number}: not an ipdscan report row ({problem}), cannot resume from it")
            succeeded[record["input"]] = record["status"] != "error"
    # As the scan will find them again: a name that is not UTF-8 was written with \\xNN escapes.
    return {report_bytes(written) for written, ok in succeeded.items() if ok or not retry_errors}


def _record(result: Result) -> dict:
    return clean_strings(result.to_dict(), report_text)


def _json_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, default=str)


class JsonlReport:
    """One JSON object per line, no header line: consumers expect items only. The scan header goes beside it
    (``header_path``), where ``merge`` and ``--resume`` check that rows added to it come from the same scan."""

    def __init__(self, path: Path, header: dict, *, resume: bool = False, retry_errors: bool = False):
        if resume and path.exists():
            written = read_header(path)
            if written is not None and (mismatch := identity_mismatch(written, header)):
                raise ValueError(f"cannot resume {path}: it was scanned with other settings ({mismatch}); "
                                 "write to a new report")
            _drop_partial_last_line(path)
        self.path, self.retry_errors = path, resume and retry_errors
        if path == STDOUT:  # rows only, as they come: a pipe has no place for the header
            self.file = StdoutText()
            return
        self.file = open(path, "a" if resume else "w", encoding="utf-8", newline="\n")
        if not (resume and header_path(path).exists()):
            _publish_header(path, header)

    def write(self, result: Result) -> None:
        self.file.write(_json_line(_record(result)) + "\n")

    def flush(self) -> None:
        self.file.flush()
        if self.path != STDOUT:
            os.fsync(self.file.fileno())

    def close(self, summary: dict) -> None:
        self.flush()
        if self.path == STDOUT:
            return
        self.file.close()
        if self.retry_errors:
            _replace_retried_rows(self.path)


def _replace_retried_rows(path: Path) -> None:
    """Give each input one row again after --retry-errors appended new rows for inputs that had error rows:
    an input's last row takes the place of its first, so the report keeps one row per input, in input order.

    Until this runs (a crash first), both rows stay and the later one counts: completed_inputs reads the last.
    The report is rewritten and renamed into place, as a whole, and only when some input has two rows.
    """
    def rows():
        with open(path, "rb") as file:
            for line in file:
                yield json.loads(line)["input"], line

    last_line: dict[str, int] = {}
    count = 0
    for count, (written, _) in enumerate(rows(), 1):
        last_line[written] = count
    if len(last_line) == count:
        return
    seen: set[str] = set()
    replacements = {}  # input -> its last row, for the inputs that have more than one
    for number, (written, line) in enumerate(rows(), 1):
        if written in seen and last_line[written] == number:
            replacements[written] = line
        seen.add(written)

    def write(out) -> None:
        placed: set[str] = set()
        for written, line in rows():
            if written in replacements:
                if written in placed:
                    continue
                line = replacements[written]
                placed.add(written)
            out.write(line)

    publish(path, write, binary=True)


def _drop_partial_last_line(path: Path, block: int = 1 << 16) -> None:
    """Truncate the file after its last newline: a write that a crash cut short."""
    with open(path, "r+b") as file:
        end = file.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            start = max(0, position - block)
            file.seek(start)
            newline = file.read(position - start).rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            position = start
        else:
            keep = 0
        if keep < end:
            file.truncate(keep)


class CsvReport:
    """A header row of FIELDS, then one row per image; scores with 6 decimals. The scan header and summary go
    beside it, in <name>.header.json as for .jsonl, so the threshold and model travel with the CSV (``merge`` and
    ``report`` read them). Rows wait in a Spool until close(), the header file published right after them; or
    go to stdout as they come, without a header (a pipe has no place for it, as for .jsonl)."""

    def __init__(self, path: Path, header: dict):
        self.path, self.header = path, header
        self.rows = StdoutText() if path == STDOUT else Spool(path)
        self.writer = csv.writer(self.rows)
        self.writer.writerow(FIELDS)

    def write(self, result: Result) -> None:
        record = {name: csv_text(value) for name, value in result.to_dict().items()}  # csv_text does report_text
        if record["score"] is not None:
            record["score"] = f"{record['score']:.{CSV_SCORE_DECIMALS}f}"
        self.writer.writerow(record.values())  # csv writes None as an empty cell

    def flush(self) -> None:
        if self.path == STDOUT:
            self.rows.flush()  # on a file, nothing to make durable: the report appears whole at close()

    def close(self, summary: dict) -> None:
        if self.path == STDOUT:
            self.rows.flush()
            return
        publish_spooled(self.path, [self.rows])
        _publish_header(self.path, {**self.header, **summary})


def csv_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, row) for each row of a .csv report, in the form ``Result.to_dict`` gives: empty cells as None,
    numbers as numbers (a cell that is not one stays text, for the caller's row check to name), text cells without
    the formula guard's leading '."""
    with open(path, encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        for row in reader:
            record = {}
            for name, cell in row.items():
                if name in INT_FIELDS or name in FLOAT_FIELDS:
                    record[name] = _number(cell, int if name in INT_FIELDS else float) if cell else None
                else:
                    record[name] = csv_cell_value(cell) if isinstance(cell, str) else cell
            yield reader.line_num, record


def _number(cell: str, kind: type) -> int | float | str:
    try:
        return kind(cell)
    except ValueError:
        return cell


class JsonReport:
    """{"header": {...header, ...summary}, "items": [...]}, items one per line. Memory stays flat: items
    wait in a Spool and are copied after the header, which is only complete at close."""

    def __init__(self, path: Path, header: dict):
        self.path, self.rows = path, Spool(path)
        self.header = header
        self.count = 0

    def write(self, result: Result) -> None:
        self.rows.write((",\n" if self.count else "\n") + _json_line(_record(result)))
        self.count += 1

    def flush(self) -> None:
        pass  # as CsvReport: the report appears whole at close()

    def close(self, summary: dict) -> None:
        header = json.dumps(clean_strings({**self.header, **summary}, report_text), ensure_ascii=False, indent=1,
                            default=str)
        publish_spooled(self.path, [f'{{"header": {header},\n"items": [', self.rows,
                                    "\n]}\n" if self.count else "]}\n"])
