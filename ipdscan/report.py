"""Report writers, chosen by the --out extension: .csv, .jsonl or .json, one row per Result.

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
from pathlib import Path
from typing import Protocol

from .publish import ReportError, Spool, check_output_folder, publish, publish_spooled
from .result import FIELDS, Result, row_problem
from .sarif import SarifWriter
from .text import clean_strings, csv_text, report_bytes, report_text

REPORT_FORMATS = (".csv", ".jsonl", ".json", ".sarif")
HEADER_SUFFIX = ".header.json"
# What makes rows comparable: parts of one scan, or a scan and its --resume, must agree on all of these.
SCAN_IDENTITY = ("model", "variant", "weights_sha256", "threshold")


class ReportWriter(Protocol):
    def write(self, result: Result) -> None: ...

    def flush(self) -> None: ...  # called after every batch

    def close(self, summary: dict) -> None: ...  # summary: end_time, counts, wall time, ...


def open_report(path: Path, header: dict, *, resume: bool = False, retry_errors: bool = False,
                root: Path | None = None) -> ReportWriter:
    """A writer for ``path``, by its extension; ``header`` describes the scan (tool, model, start time, ...).

    ``retry_errors`` (with ``resume``): rows written for inputs that already have a row replace those rows,
    in their place, when the writer closes. ``root`` is the folder SARIF artifact URIs are relative to
    (default: the current directory).
    """
    path = Path(path)
    check_report_path(path)
    suffix = path.suffix.lower()
    if resume and suffix != ".jsonl":
        raise ValueError("--resume needs a .jsonl report")
    try:
        if suffix == ".jsonl":
            return JsonlReport(path, header, resume=resume, retry_errors=retry_errors)
        if suffix == ".sarif":
            return SarifWriter(path, header, root=root, threshold=header.get("threshold"))
        return CsvReport(path) if suffix == ".csv" else JsonReport(path, header)
    except OSError as exc:
        raise ReportError(path, exc) from exc


def check_report_path(path: Path) -> None:
    """Refuse, before a scan starts, a report of an unknown format (ValueError) or in no folder (FileNotFoundError)."""
    if path.suffix.lower() not in REPORT_FORMATS:
        raise ValueError(f"unsupported report format {path.suffix or path.name!r}: use {', '.join(REPORT_FORMATS)}")
    check_output_folder(path)


def header_path(report: Path) -> Path:
    """Where a .jsonl report's scan header lives: beside it, as <name>.header.json (the .jsonl holds rows only)."""
    report = Path(report)
    return report.with_name(report.name + HEADER_SUFFIX)


def read_header(report: Path) -> dict | None:
    """The scan header kept beside a .jsonl report, or None when it has none (written by an older ipdscan)."""
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
        self.file = open(path, "a" if resume else "w", encoding="utf-8", newline="\n")
        if not (resume and header_path(path).exists()):
            publish(header_path(path), lambda out: out.write(json.dumps(clean_strings(header, report_text),
                                                                        ensure_ascii=False, indent=1, default=str) + "\n"))

    def write(self, result: Result) -> None:
        self.file.write(_json_line(_record(result)) + "\n")

    def flush(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self, summary: dict) -> None:
        self.flush()
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
    """A header row of FIELDS, then one row per image; scores with 6 decimals. The scan header and
    summary have no place in a CSV: use .json to keep them. Rows wait in a Spool until close()."""

    def __init__(self, path: Path):
        self.path, self.rows = path, Spool(path)
        self.writer = csv.writer(self.rows)
        self.writer.writerow(FIELDS)

    def write(self, result: Result) -> None:
        record = {name: csv_text(value) for name, value in result.to_dict().items()}  # csv_text does report_text
        if record["score"] is not None:
            record["score"] = f"{record['score']:.6f}"
        self.writer.writerow(record.values())  # csv writes None as an empty cell

    def flush(self) -> None:
        pass  # nothing to make durable: the report appears whole at close() or not at all

    def close(self, summary: dict) -> None:
        publish_spooled(self.path, [self.rows])


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
