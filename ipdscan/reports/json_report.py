"""The JSON family of report writers: .jsonl (one object a line, durable at every batch, resumable) and .json
(a header and the items, published whole at close), and what --resume reads back from a .jsonl."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..scanning.result import Result, row_problem
from ..text import clean_strings, report_bytes, report_text
from .header_file import header_path, identity_mismatch, publish_header, read_header
from .output_format import STDOUT
from .publish import Spool, StdoutText, publish, publish_spooled


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
            publish_header(path, header)

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
