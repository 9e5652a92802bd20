"""Combine the .jsonl reports of a sharded scan into one report, checking for duplicates and gaps."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

from .report import open_report
from .result import Result

_DEFAULTS = {f.name: f.default for f in fields(Result)}


class MergeError(Exception):
    """Parts that do not add up to one clean report; the message says what and where."""


@dataclass
class MergeStats:
    rows: int = 0
    parts: int = 0
    duplicates: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def read_part(path: Path) -> Iterator[Result]:
    """Rows of one .jsonl part; a trailing line without newline (a killed shard) is an error, not data."""
    with open(path, "rb") as file:
        for number, line in enumerate(file, 1):
            if not line.endswith(b"\n"):
                raise MergeError(f"{path}, line {number}: cut short (the shard was interrupted): rerun it with --resume")
            try:
                record = json.loads(line)
                yield Result(**{name: record.get(name, default) for name, default in _DEFAULTS.items()})
            except (ValueError, TypeError):
                raise MergeError(f"{path}, line {number}: not an ipdscan report line") from None


def merge_reports(parts: Iterable[Path], out: Path, header: dict, expected: Iterable[str] | None = None,
                  allow_duplicates: bool = False) -> MergeStats:
    """Write every row of ``parts`` (in the order given) to ``out``.

    Raises MergeError, writing nothing, when an input appears twice (unless ``allow_duplicates``:
    then the first row wins) or, given ``expected`` inputs, when one of them has no row.
    """
    parts = [Path(p) for p in parts]
    stats, seen = MergeStats(parts=len(parts)), set()
    for part in parts:  # first pass: check, holding only the input names
        for result in read_part(part):
            if result.input in seen:
                stats.duplicates.append(result.input)
            seen.add(result.input)
    if expected is not None:
        stats.missing = [name for name in expected if name not in seen]
    problems = []
    if stats.duplicates and not allow_duplicates:
        problems.append(f"{len(stats.duplicates)} input(s) appear in more than one row, e.g. {stats.duplicates[0]!r}")
    if stats.missing:
        problems.append(f"{len(stats.missing)} expected input(s) have no row, e.g. {stats.missing[0]!r}")
    if problems:
        raise MergeError("; ".join(problems))
    writer, written = open_report(out, {**header, "merged_from": [str(p) for p in parts]}), set()
    for part in parts:  # a failure here leaves no report: .csv/.json appear only at close()
        for result in read_part(part):
            if result.input not in written:
                writer.write(result)
                written.add(result.input)
    stats.rows = len(written)
    writer.close({"rows": stats.rows, "parts": stats.parts, "duplicates_dropped": len(stats.duplicates)})
    return stats
