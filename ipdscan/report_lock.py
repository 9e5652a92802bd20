"""One scan at a time per report: an exclusive lock on ``<report>.lock`` beside it, held for the whole scan.

Two scans appending to one .jsonl interleave their writes (a corrupt line, lost rows), two ``--resume`` runs
both take the same inputs as not done yet (every row twice), and two .csv/.json/.sarif scans silently replace
each other's report. The lock is on a file of its own, not on the report, because .csv/.json/.sarif reports are
replaced by a rename when they are published: a lock on the old file would not keep out a scan that opens the new
one. It is never waited for: a second scan is refused before it touches the report.

The lock is ``flock`` on POSIX and ``msvcrt.locking`` on Windows (``try_lock``): both belong to the open file and go
when the process dies, kill -9 included.
"""
from __future__ import annotations

import os
from pathlib import Path

from .publish import ReportError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


def try_lock(fd: int) -> bool:
    """Take an exclusive lock on the open file ``fd`` without waiting; False if another process holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # the file's first byte, which every scan locks; msvcrt raises OSError (EACCES) when taken
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:  # BlockingIOError from flock
        return False
    return True


def unlock_and_remove(fd: int, path: Path) -> None:
    """Let go of the lock on ``fd`` and remove its file. POSIX removes it while still holding it (see acquire);
    Windows cannot remove an open file, so it unlocks and closes first."""
    if fcntl is not None:
        os.unlink(path)
        os.close(fd)
        return
    os.lseek(fd, 0, os.SEEK_SET)
    msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    os.close(fd)
    try:
        os.unlink(path)
    except OSError:  # another scan opened it in between: it will use it
        pass


class ReportBusy(Exception):
    """Another scan holds the report's lock."""


class ReportLock:
    """``acquire()`` or raise ReportBusy (ReportError when the folder cannot be written); ``release()`` removes the
    lock file. A context manager as well."""

    def __init__(self, report: Path):
        self.report = Path(report)
        self.path = self.report.with_name(self.report.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> "ReportLock":
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:  # the lock is the scan's first write: name the report, not the lock file
                raise ReportError(self.report, exc) from None
            if not try_lock(fd):
                os.close(fd)
                raise ReportBusy(f"another scan is writing {self.report} (it holds {self.path})")
            # The scan before this one removes the file as it lets go: if it did so between this open and this
            # flock, the lock is on a file no other scan will find. Then take it again on the file there now.
            try:
                current = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                current = False
            if current:
                self._fd = fd
                return self
            os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        unlock_and_remove(self._fd, self.path)  # POSIX: while still holding the lock, see acquire
        self._fd = None

    def __enter__(self) -> "ReportLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
