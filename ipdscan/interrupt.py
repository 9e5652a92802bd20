"""Signals that stop a scan: SIGTERM stops it as Ctrl-C does, and neither cuts a report write in half.

A CI job that is cancelled gets SIGTERM, whose default action kills the process at once: a .csv, .json or .sarif
report, published only when the scan ends, was lost entirely. Raised as an exception in the main thread instead,
it unwinds through the same path as Ctrl-C's KeyboardInterrupt: the rows scanned so far are written and the
report is closed.
"""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt (so every ``except KeyboardInterrupt`` sees both)."""

    def __init__(self):
        super().__init__("terminated by SIGTERM")


def _raise_terminated(signum, frame):
    raise Terminated()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """In the block, SIGTERM raises Terminated in the main thread (elsewhere handlers cannot be set: a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def as_worker(*_) -> None:
    """A decoding worker's signals, set as it starts (the pool's initializer; DataLoader's worker_init_fn, which
    passes the worker's id). Ctrl-C and a SIGTERM to the process group reach the workers too, but the scanning
    process is the one that handles them and ends the workers: a worker ignores Ctrl-C, and on SIGTERM leaves at
    once with exit 0, as torch's own workers do when their parent sends it. Killed by the signal instead, a
    DataLoader worker made the scanning process print torch's "worker is killed by signal" traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _leave)


def _leave(signum, frame) -> None:
    os._exit(0)


@contextmanager
def signal_handlers_kept() -> Iterator[None]:
    """SIGINT's and SIGTERM's handlers as they were before the block, whatever it installs (``ray.init`` sets its
    own SIGTERM handler, a ``sys.exit`` that would bypass the scan's: the report would not be closed)."""
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive in the block are raised when it ends, so that what it writes is whole."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    if received:
        raise Terminated() if received[0] == signal.SIGTERM else KeyboardInterrupt()
