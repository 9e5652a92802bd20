"""The scan header kept beside a .jsonl or .csv report (<name>.header.json: those files hold rows only), and what
makes two scans' rows comparable (``SCAN_IDENTITY``), which --resume and merge check."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..text import clean_strings, report_text
from ..trusted_text import TrustedFileError, read_trusted_text
from .publish import publish

HEADER_SUFFIX = ".header.json"
HEADER_MAX_BYTES = 16 << 20
# What makes rows comparable: parts of one scan, or a scan and its --resume, must agree on all of these.
SCAN_IDENTITY = ("model", "variant", "weights_sha256", "threshold")


def header_path(report: Path) -> Path:
    """Where a .jsonl or .csv report's scan header lives: beside it, as <name>.header.json (they hold rows only)."""
    report = Path(report)
    return report.with_name(report.name + HEADER_SUFFIX)


def read_header(report: Path) -> dict | None:
    """The scan header kept beside a .jsonl or .csv report, or None when it has none (written by an older ipdscan)."""
    path = header_path(report)
    if not os.path.lexists(path):
        return None
    try:  # beside the report, which a hand-made or planted one may not leave (trusted_text.py)
        text = read_trusted_text(path, what="report header", max_bytes=HEADER_MAX_BYTES, within=Path(report).parent)
    except TrustedFileError as exc:
        raise ValueError(str(exc)) from None
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
