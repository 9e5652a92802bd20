"""The scan header kept beside a .jsonl or .csv report (<name>.header.json: those files hold rows only), and what
makes two scans' rows comparable (``SCAN_IDENTITY``), which --resume and merge check."""
from __future__ import annotations

import json
from pathlib import Path

from ..text import clean_strings, report_text
from .publish import publish

HEADER_SUFFIX = ".header.json"
# What makes rows comparable: parts of one scan, or a scan and its --resume, must agree on all of these.
SCAN_IDENTITY = ("model", "variant", "weights_sha256", "threshold")


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


def publish_header(report: Path, header: dict) -> None:
    text = json.dumps(clean_strings(header, report_text), ensure_ascii=False, indent=1, default=str) + "\n"
    publish(header_path(report), lambda out: out.write(text))


def identity_mismatch(expected: dict, found: dict) -> str | None:
    """The first SCAN_IDENTITY field on which two headers differ, as "field: a vs b", or None if they agree."""
    for key in SCAN_IDENTITY:
        if expected.get(key) != found.get(key):
            return f"{key}: {expected.get(key)!r} vs {found.get(key)!r}"
    return None
