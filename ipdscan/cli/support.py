"""What every command of the CLI shares: a usage error, the one-line failure and exit 2, the guard around each
command, and the --workers warning. Imports nothing heavy (the CLI answers --help without torch)."""
from __future__ import annotations

import functools

import typer

from ..choices import EXIT_ERROR
from ..extras import MissingExtra
from ..interrupt import sigterm_as_interrupt
from ..reports.output_format import FORMATS
from .console import print_warning, shown, stderr

REPORT_SUFFIXES = ", ".join(spec.suffix for spec in FORMATS.values())


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit 2."""


def fail(message: str) -> typer.Exit:
    stderr.print(f"[bold red]error:[/] {shown(message)}", highlight=False)
    return typer.Exit(EXIT_ERROR)


def failures_exit_2(command):
    """Whatever escapes ``command`` (Ctrl-C, SIGTERM, a bug) is one line on stderr and exit 2, never 1
    ("flagged"), 130, 143 or a traceback. SIGTERM is raised like Ctrl-C, so the command can close its report.
    Around every command but train, which hands its arguments and exit code through to the trainer (unguarded,
    click would make a Ctrl-C in merge, eval or explain exit 130)."""
    @functools.wraps(command)
    def guarded(*args, **kwargs):
        try:
            with sigterm_as_interrupt():
                return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise  # the command's own exit code
        except KeyboardInterrupt as exc:
            raise fail(str(exc) or "interrupted") from None
        except MissingExtra as exc:  # the pip command, as it is
            raise fail(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - the boundary: one line, not a traceback
            raise fail(f"{type(exc).__name__}: {exc}") from None
    return guarded


def warn_about_workers(workers: int | None) -> None:
    """Say so when --workers asks for more processes than will be started (runtime.default_workers caps them)."""
    from ..model.runtime import worker_limit
    if workers is not None and workers > (limit := worker_limit()):
        print_warning(f"--workers {workers}: more than this machine's {limit} CPUs can use; starting {limit}")
