"""Which report a scan writes, and where: ``--format`` (or the ``--out`` extension) and ``--out`` (a file, or ``-``
for standard output). Imports nothing heavy, so the CLI's help lists the formats without loading a writer.

A new format is one entry in ``FORMATS`` (and its writer in ``report.open_report``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TABLE = "table"  # the terminal table: stdout only, no report file
# What --out - (or /dev/stdout) becomes: writers compare with it to write to standard output instead of a file.
STDOUT = Path("/dev/stdout")
STDOUT_NAMES = ("-", "/dev/stdout")


@dataclass(frozen=True)
class Format:
    suffix: str  # the --out extension that picks it when --format is absent
    streams: bool  # rows reach stdout as they are scanned (else the whole report at the end)


FORMATS = {"csv": Format(".csv", True), "jsonl": Format(".jsonl", True), "json": Format(".json", False),
           "sarif": Format(".sarif", False), "html": Format(".html", False)}
FORMAT_NAMES = (TABLE, *FORMATS)


class FormatError(ValueError):
    """A --format/--out combination that names no report: one line for the user, exit 2."""


def report_target(out: str | Path | None) -> Path | None:
    """``--out`` as a path: ``STDOUT`` for the text ``-`` or ``/dev/stdout``, None for none. Only text is read so:
    a Path is a file (``Path("./-")`` is ``Path("-")``, and ``--out ./-`` names a file called ``-``)."""
    if isinstance(out, str):
        return STDOUT if out in STDOUT_NAMES else Path(out)
    return out


def format_of(name: str | None, out: Path | None) -> str:
    """The format a scan writes: ``name`` (--format) when given, else the extension of ``out``, else the table."""
    if name is not None:
        if name not in FORMAT_NAMES:
            raise FormatError(f"unknown --format {name!r}: use {', '.join(FORMAT_NAMES)}")
        if name == TABLE and out is not None and out != STDOUT:
            raise FormatError(f"--format table prints to the terminal: give --out a report format "
                              f"({', '.join(FORMATS)}) or leave --out out")
        return name
    if out is None:
        return TABLE
    if out == STDOUT:
        raise FormatError(f"--out - writes the report to stdout: choose its format with --format "
                          f"{'|'.join(FORMATS)}")
    return suffix_format(out)


def suffix_format(path: Path) -> str:
    """The report format ``path``'s extension names; FormatError for any other."""
    suffix = Path(path).suffix.lower()
    for name, spec in FORMATS.items():
        if spec.suffix == suffix:
            return name
    raise FormatError(f"unsupported report format {suffix or Path(path).name!r}: "
                      f"use {', '.join(spec.suffix for spec in FORMATS.values())} or --format")


def check_resumable(out: Path | None, format: str) -> None:
    """--resume appends to the report it reads: only a .jsonl file can be (FormatError otherwise)."""
    if format != "jsonl" or out is None or out == STDOUT:
        raise FormatError("--resume needs --out FILE.jsonl")
