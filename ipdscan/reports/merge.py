"""Combine the .jsonl (or .csv) reports of a sharded scan into one report, checking for duplicates and gaps.

Every line of every part must be a report row (see ``Result``); the parts must come from one scan (the same
model, variant, weights and threshold: ``header_file.SCAN_IDENTITY``, read from each part's header file), which the
merged report's header then records. With the scan's inputs given as ``expected``, rows come in their order.
"""
from __future__ import annotations

import functools
import heapq
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..scanning.result import Result, row_problem
from ..text import clean_strings, report_bytes
from .csv_report import CSV_SCORE_DECIMALS, csv_records
from .header_file import HEADER_SUFFIX, SCAN_IDENTITY, header_path, identity_mismatch, read_header
from .writers import open_report

PART_FORMATS = (".jsonl", ".csv")  # the formats rows can be read back from, with their header files


class MergeError(Exception):
    """Parts that do not add up to one clean report; the message says what and where."""


@dataclass
class MergeStats:
    rows: int = 0
    parts: int = 0
    duplicates: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def read_part(path: Path, threshold: float | None = None) -> Iterator[Result]:
    """Rows of one .jsonl or .csv part, their text as the scan had it (a name that is not UTF-8 as its bytes); a
    trailing line without newline (a killed shard) is an error, not data. With the scan's ``threshold``, labels
    must agree with it (``row_problem``)."""
    if path.name.endswith(HEADER_SUFFIX):
        raise MergeError(f"{path} is the header file of a part, not a part: give the .jsonl or .csv reports")
    if path.suffix.lower() not in PART_FORMATS:
        raise MergeError(f"{path}: reports are read from {' or '.join(PART_FORMATS)} files")
    csv = path.suffix.lower() == ".csv"
    score_error = 0.5 * 10 ** -CSV_SCORE_DECIMALS if csv else 0.0
    for number, record in csv_records(path) if csv else _jsonl_records(path):
        problem = row_problem(record, threshold, score_error)
        if problem:
            raise MergeError(f"{path}, line {number}: not an ipdscan report row ({problem})")
        yield Result.from_row(clean_strings(record, report_bytes))  # as scanned: the writer escapes it again


def _jsonl_records(path: Path) -> Iterator[tuple[int, object]]:
    with open(path, "rb") as file:
        for number, line in enumerate(file, 1):
            if not line.endswith(b"\n"):
                raise MergeError(f"{path}, line {number}: cut short (the shard was interrupted): rerun it with --resume")
            try:
                yield number, json.loads(line)
            except ValueError:
                raise MergeError(f"{path}, line {number}: not JSON, so not an ipdscan report line") from None


def scan_identity(parts: list[Path]) -> dict:
    """The SCAN_IDENTITY fields the parts share (empty when none has a header); MergeError if they differ."""
    headers = []
    for part in parts:
        try:
            headers.append((part, read_header(part)))
        except ValueError as exc:
            raise MergeError(str(exc)) from None
    with_header = [(part, header) for part, header in headers if header is not None]
    if not with_header:
        return {}  # all written before parts had headers: nothing to compare
    if len(with_header) < len(headers):
        lacking = next(part for part, header in headers if header is None)
        raise MergeError(f"{lacking} has no {header_path(lacking).name} beside it, so it cannot be checked against "
                         "the other parts (model, weights, threshold): merge parts of one scan, with their header files")
    first, reference = with_header[0]
    for part, header in with_header[1:]:
        if mismatch := identity_mismatch(reference, header):
            raise MergeError(f"{part} comes from a different scan than {first} ({mismatch}): "
                             "merge only the parts of one scan")
    return {key: reference.get(key) for key in SCAN_IDENTITY}


def merge_reports(parts: Iterable[Path], out: Path, header: dict, expected: Iterable[str] | None = None,
                  allow_duplicates: bool = False, format: str | None = None) -> MergeStats:
    """Write every row of ``parts`` to ``out`` (in ``format``, by default its extension's): in the order of ``expected`` when given (rows of inputs not in
    it after those), else part by part in the order given.

    Raises MergeError, writing nothing, when a line is not a report row, when the parts come from scans with
    different settings, when an input appears twice (unless ``allow_duplicates``: then the first row wins)
    or, given ``expected`` inputs, when one of them has no row. The merged header is ``header`` plus the
    parts' model, variant, weights hash and threshold.
    """
    parts = [Path(p) for p in parts]
    identity = scan_identity(parts)
    read = functools.partial(read_part, threshold=identity.get("threshold"))  # labels must agree with it
    stats, seen = MergeStats(parts=len(parts)), set()
    for part in parts:  # first pass: check, holding only the input names
        for result in read(part):
            if result.input in seen:
                stats.duplicates.append(result.input)
            seen.add(result.input)
    position: dict[str, int] = {}
    if expected is not None:
        for name in expected:
            position.setdefault(name, len(position))
        stats.missing = [name for name in position if name not in seen]
    problems = []
    if stats.duplicates and not allow_duplicates:
        problems.append(f"{len(stats.duplicates)} input(s) appear in more than one row, e.g. {stats.duplicates[0]!r}")
    if stats.missing:
        problems.append(f"{len(stats.missing)} expected input(s) have no row, e.g. {stats.missing[0]!r}")
    if problems:
        raise MergeError("; ".join(problems))
    writer, written = open_report(out, {**identity, **header, "merged_from": [str(p) for p in parts]},
                                  format=format), set()
    # Each part is in its shard's input order, so merging by position gives the scan's order.
    rows = heapq.merge(*map(read, parts), key=lambda row: position.get(row.input, math.inf)) if position \
        else (row for part in parts for row in read(part))
    for result in rows:  # a failure here leaves no report: .csv/.json appear only at close()
        if result.input not in written:
            writer.write(result)
            written.add(result.input)
    stats.rows = len(written)
    writer.close({"rows": stats.rows, "parts": stats.parts, "duplicates_dropped": len(stats.duplicates)})
    return stats
