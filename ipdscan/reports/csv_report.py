"""The .csv report writer, and reading a .csv report's rows back (merge, report). Text cells a spreadsheet would
run as a formula get a leading ' (``text.csv_text``); scores are rounded to CSV_SCORE_DECIMALS."""
from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from ..scanning.result import FIELDS, FLOAT_FIELDS, INT_FIELDS, Result
from ..text import csv_cell_value, csv_text
from .header_file import publish_header
from .output_format import STDOUT
from .publish import Spool, StdoutText, publish_spooled

CSV_SCORE_DECIMALS = 6  # a .csv's scores are rounded to these: a score read back from one is off by half a unit


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
        publish_header(self.path, {**self.header, **summary})


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
