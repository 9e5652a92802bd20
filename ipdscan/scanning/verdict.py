"""A scan's counts (``ScanStats``) and what they come to: the exit ``Verdict`` and the warnings a clean exit may
still need.

Exit codes: 0 the scan finished; 1 flagged (--fail-on, --fail-on-evidence), the verdict naming the files that
tripped it; 2 an error (a model_error row is one, whatever the flags: a detector that outputs NaN judges nothing;
so is a run in which every input failed, whatever the flags: it fails closed, never passing a CI gate it could
not judge). Errors win over flags, as in grep: a run that could not look at everything it was asked to has no
clean verdict.
"""
from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

from ..choices import EXIT_ERROR, EXIT_FLAGGED, EXIT_OK
from .result import Result


class ScanStats:
    """Counts for the summary, the top-scoring files, and the exit code's verdict."""

    def __init__(self, top: int = 5, fail_on: float | None = None):
        self.started = time.monotonic()
        self.fail_on = fail_on
        self.at_fail_on = 0  # unsuppressed scores at or above fail_on
        self.scanned = self.ok = self.errors = self.flagged = self.declared_ai = self.suppressed = 0
        self.model_errors = 0
        self.max_score: float | None = None
        self.declared: list[str] = []  # the first few inputs that declare AI generation, for the summary
        self._top: list[tuple[float, int, str]] = []
        self._top_suppressed: list[tuple[float, int, str]] = []  # what the ignore files and baseline hid, and how high
        self._keep = top

    def add(self, result: Result) -> None:
        """Count ``result``; a suppressed finding counts as scanned (and ok or an error), never towards a flag."""
        self.scanned += 1
        self.suppressed += bool(result.suppressed)
        declares_ai = result.declares_ai and not result.suppressed
        self.declared_ai += declares_ai
        if declares_ai and len(self.declared) < self._keep:
            self.declared.append(result.input)
        if not result.ok:
            self.errors += 1
            self.model_errors += result.error_code == "model_error"
            return
        self.ok += 1
        top = self._top_suppressed if result.suppressed else self._top
        (heapq.heappush if len(top) < self._keep else heapq.heappushpop)(top, (result.score, -self.scanned, result.input))
        if result.suppressed:
            return
        self.flagged += result.label == "ai"
        self.at_fail_on += self.fail_on is not None and result.score >= self.fail_on
        self.max_score = result.score if self.max_score is None else max(self.max_score, result.score)

    @property
    def wall_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.scanned / self.wall_s if self.wall_s > 0 else 0.0

    def top(self, suppressed: bool = False) -> list[tuple[str, float]]:
        """The highest-scoring inputs, highest first: those that count, or (``suppressed``) the suppressed ones."""
        return [(name, score) for score, _, name in sorted(self._top_suppressed if suppressed else self._top,
                                                           reverse=True)]

    def to_dict(self) -> dict:
        return {"scanned": self.scanned, "ok": self.ok, "errors": self.errors, "flagged": self.flagged,
                "declared_ai": self.declared_ai, "suppressed": self.suppressed,
                "wall_s": round(self.wall_s, 3), "images_per_s": round(self.rate, 2)}


@dataclass(frozen=True)
class Verdict:
    code: int  # EXIT_OK, EXIT_FLAGGED or EXIT_ERROR
    reason: str = ""  # the one-line error (EXIT_ERROR), or what tripped the flag and on which files (EXIT_FLAGGED)


def run_warnings(stats: ScanStats) -> list[str]:
    if stats.scanned == 0:
        return ["nothing was scanned: the inputs hold no image files or URLs (or --shard/--resume left none)"]
    return []


def is_finding(result: Result, fail_on: float | None = None) -> bool:
    """A row a reviewer has to look at: declaring AI generation (an error row too), or scored ai or at or over
    --fail-on."""
    return result.declares_ai or (result.ok and (result.label == "ai" or (
        fail_on is not None and result.score is not None and result.score >= fail_on)))


def verdict(stats: ScanStats, *, missing: list[str], fail_on: float | None = None, fail_on_evidence: bool = False,
            fail_on_error: bool = False) -> Verdict:
    if missing:
        return Verdict(EXIT_ERROR, "no such file or directory: " + ", ".join(missing))
    if stats.model_errors:  # not the inputs' fault: the detector itself is broken, so no verdict holds
        return Verdict(EXIT_ERROR, f"the model gave no score for {stats.model_errors} of {stats.scanned} inputs "
                                   "(model_error): the weights or the device are faulty")
    if stats.scanned and not stats.ok:  # fail closed: a CI gate never passes a run it could not judge at all
        return Verdict(EXIT_ERROR, f"every input failed ({stats.errors} of {stats.scanned}): nothing was scored, "
                                   "so there is no verdict")
    if fail_on_error and stats.errors:
        return Verdict(EXIT_ERROR, f"{stats.errors} of {stats.scanned} inputs could not be scanned (--fail-on-error)")
    tripped = []
    if fail_on is not None and stats.max_score is not None and stats.max_score >= fail_on:
        names = [f"{name} ({score:.3f})" for name, score in stats.top() if score >= fail_on]
        tripped.append(f"{stats.at_fail_on} scored at or above --fail-on {fail_on:g}: "
                       + _listed(names, stats.at_fail_on))
    if fail_on_evidence and stats.declared_ai:
        tripped.append(f"{stats.declared_ai} declare AI generation (--fail-on-evidence): "
                       + _listed(stats.declared, stats.declared_ai))
    return Verdict(EXIT_FLAGGED, "; ".join(tripped)) if tripped else Verdict(EXIT_OK)


def _listed(names: list[str], count: int) -> str:
    return ", ".join(names) + (f" and {count - len(names)} more" if count > len(names) else "")
