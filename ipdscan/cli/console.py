"""What the CLI shows a person: progress on stderr, the result table, the end summary."""
from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..scanning.result import Result
from ..text import report_text, threshold_text

if TYPE_CHECKING:
    from ..scanning.verdict import ScanStats

# Piped or redirected, the table is read by tools and people with wide windows: don't fold paths at 80 columns.
stdout = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 240)
stderr = Console(stderr=True, soft_wrap=True)

# What a terminal obeys instead of showing: C0 controls (newlines too: one input, one line), DEL, C1 controls,
# and the bidirectional controls that make a name display as something else.
TERMINAL_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` as a terminal shows it without obeying it: control characters as visible escapes (ESC as ``\\x1b``),
    bytes that are not UTF-8 as ``\\xNN`` (as in the reports). For every file name, URL or message that reaches
    the terminal: they come from whoever named the files or wrote the URL list."""
    return TERMINAL_CONTROLS.sub(_escaped, report_text(text))


def _escaped(match: re.Match) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(text: object) -> str:
    """User-controlled text for a rich markup string: printable, and its square brackets literal, not markup."""
    return escape(printable(str(text)))


class ScanProgress:
    """A rich progress bar on a terminal; plain periodic lines when stderr is a file or pipe; nothing when quiet."""

    def __init__(self, quiet: bool, interval_s: float = 10.0):
        self.quiet, self.interval_s = quiet, interval_s
        self.interactive = not quiet and sys.stderr.isatty()
        self._last_line = time.monotonic()
        self._total: int | None = None
        self._bar = None

    def __enter__(self):
        if self.interactive:
            self._bar = Progress(TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                                 TextColumn("{task.fields[rate]:.1f} img/s"), TimeRemainingColumn(),
                                 console=stderr, transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task("scan", total=None, rate=0.0)
        return self

    def __exit__(self, *exc):
        if self._bar:
            self._bar.__exit__(*exc)

    def count_in_background(self, items: Iterable) -> None:
        """Count the inputs in a daemon thread, so the bar gets a total (and an ETA) without delaying the scan."""
        if self.quiet:
            return  # nothing shows the total, and the count walks every input once more
        def count():
            self._total = sum(1 for _ in items)
            if self._bar:
                self._bar.update(self._task, total=self._total)
        threading.Thread(target=count, daemon=True).start()

    def update(self, stats: ScanStats) -> None:
        if self._bar:
            self._bar.update(self._task, completed=stats.scanned, rate=stats.rate)
        elif not self.quiet and time.monotonic() - self._last_line >= self.interval_s:
            self._last_line = time.monotonic()
            of = f"/{self._total}" if self._total is not None else ""
            print(f"ipdscan: scanned {stats.scanned}{of} ({stats.rate:.1f} img/s), "
                  f"{stats.flagged} flagged, {stats.errors} errors", file=sys.stderr, flush=True)


def score_text(score: float) -> str:
    """A score as the table and summary show it: 3 decimals."""
    return f"{score:.3f}"


def result_table(results: list[Result]) -> Table:
    """One line per input. A file whose metadata declares AI generation says so in the evidence column
    (``declared-ai``) and never shows as a plain green "real": its label is yellow then."""
    table = Table(show_lines=False)
    for column, justify in (("input", "left"), ("score", "right"), ("label", "left"), ("evidence", "left"),
                            ("format", "left"), ("size", "right"), ("status", "left")):
        table.add_column(column, justify=justify, overflow="fold")
    for r in results:
        score = score_text(r.score) if r.score is not None else ""
        real = "[yellow]real[/]" if r.declares_ai else "[green]real[/]"
        label = {"ai": "[bold red]ai[/]", "real": real}.get(r.label, "")
        evidence = "[bold magenta]declared-ai[/]" if r.declares_ai else shown(";".join(r.evidence))
        size = f"{r.width}×{r.height}" if r.width else ""
        status = "ok" if r.ok else f"[yellow]{shown(r.error_code)}[/]: {shown(r.error)}"
        if r.suppressed:
            status += f", suppressed ({shown(r.suppressed)})"
        table.add_row(shown(r.input), score, label, evidence, shown(r.format), size, status)
    return table


def print_input_error(result: Result) -> None:
    """One line per input that could not be scanned, as grep reports a file it cannot read; even when quiet.
    A row that is ok prints nothing."""
    if result.ok:
        return
    message = result.error if result.error.startswith(result.input) else f"{result.input}: {result.error}"
    stderr.print(f"ipdscan: {shown(message)} ({shown(result.error_code)})", highlight=False)


def print_warning(message: str) -> None:
    stderr.print(f"[yellow]warning:[/] {shown(message)}", highlight=False)


def print_flagged(reason: str) -> None:
    """Why a run exits 1, and on which files: said even when quiet, as an error is."""
    stderr.print(f"[bold red]flagged:[/] {shown(reason)}", highlight=False)


def print_summary(stats: ScanStats, threshold: float, out: str | None) -> None:
    stderr.print(f"scanned {stats.scanned} in {stats.wall_s:.1f} s ({stats.rate:.1f} img/s): "
                 f"[bold]{stats.flagged}[/] flagged as AI-generated (score ≥ {threshold_text(threshold)}), "
                 f"{stats.ok - stats.flagged - stats.suppressed} real, {stats.errors} errors"
                 + (f", {stats.suppressed} suppressed (ignore file, baseline)" if stats.suppressed else ""),
                 highlight=False)
    if stats.declared_ai:
        more = f" and {stats.declared_ai - len(stats.declared)} more" if stats.declared_ai > len(stats.declared) else ""
        stderr.print(f"{stats.declared_ai} file(s) declare AI generation in their metadata: "
                     + ", ".join(map(shown, stats.declared)) + more, highlight=False)
    # A score that shows as 0.000 tells nobody where to look: the list holds only scores that show as more.
    top = [(name, score) for name, score in stats.top() if score_text(score) != score_text(0)]
    if top:
        more = stats.flagged - sum(score >= threshold for _, score in top)
        stderr.print("highest scores: " + ", ".join(f"{shown(name)} ({score_text(score)})" for name, score in top)
                     + (f"; {more} more flagged" if more > 0 else ""), highlight=False)
    elif stats.ok > stats.suppressed:
        stderr.print(f"highest score: {score_text(0)} (every image scored below 0.0005)", highlight=False)
    if suppressed := stats.top(suppressed=True):  # hidden from the verdict, not from the reader
        stderr.print("suppressed findings: " + ", ".join(f"{shown(name)} ({score_text(score)})"
                                                         for name, score in suppressed), highlight=False)
    if out:
        stderr.print(f"report written to {shown(out)}", highlight=False)
