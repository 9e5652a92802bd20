"""A scan's exit code, for CI: what went wrong that a person or a pipeline must hear of, beyond the report rows.

0: the scan finished; 1: something was flagged (--fail-on, --fail-on-evidence); 2: an error. Errors win over flags,
as in grep: a run that could not look at everything it was asked to has no clean verdict.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from .console import ScanStats
from .sources import ARGUMENT_URL

EXIT_OK, EXIT_FLAGGED, EXIT_ERROR = 0, 1, 2


def missing_paths(inputs: Iterable[str]) -> list[str]:
    """Command-line inputs naming a path that does not exist: exit 2 at the end, as grep and ls do."""
    return [argument for argument in inputs
            if argument != "-" and not ARGUMENT_URL.match(argument) and not os.path.exists(argument)]


def run_warnings(stats: ScanStats) -> list[str]:
    """What a run that exits 0 may still need to say: it scanned nothing, or scored nothing."""
    if stats.scanned == 0:
        return ["nothing was scanned: the inputs hold no image files or URLs (or --shard/--resume left none)"]
    if stats.ok == 0:
        return [f"every input failed ({stats.errors} of {stats.scanned}): nothing was scored"]
    return []


@dataclass(frozen=True)
class Verdict:
    code: int
    reason: str = ""  # for exit 2: the one-line error


def verdict(stats: ScanStats, *, missing: list[str], fail_on: float | None = None, fail_on_evidence: bool = False,
            fail_on_error: bool = False) -> Verdict:
    if missing:
        return Verdict(EXIT_ERROR, "no such file or directory: " + ", ".join(missing))
    if fail_on_error and stats.errors:
        return Verdict(EXIT_ERROR, f"{stats.errors} of {stats.scanned} inputs could not be scanned (--fail-on-error)")
    if fail_on is not None and stats.max_score is not None and stats.max_score >= fail_on:
        return Verdict(EXIT_FLAGGED)
    if fail_on_evidence and stats.declared_ai:
        return Verdict(EXIT_FLAGGED)
    return Verdict(EXIT_OK)
