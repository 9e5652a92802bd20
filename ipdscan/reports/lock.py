"""One scan at a time per report: an exclusive lock on ``<report>.lock`` beside it, held for the whole scan.

Two scans appending to one .jsonl interleave their writes (a corrupt line, lost rows), two ``--resume`` runs
both take the same inputs as not done yet (every row twice), and two .csv/.json/.sarif scans silently replace
each other's report. The lock is on a file of its own, not on the report, because .csv/.json/.sarif reports are
replaced by a rename when they are published: a lock on the old file would not keep out a scan that opens the new
one. It is never waited for: a second scan is refused before it touches the report.

The lock is ``flock`` on POSIX and ``msvcrt.locking`` on Windows (``try_lock``): both belong to the open file and go
when the process dies, kill -9 included.

The lock file is named after the report's real path, so a symlink (or a symlinked folder) to a report is locked
as the report itself; a report that is already there is locked by its inode too (POSIX), so a hard link to it,
whose path names another lock file, is locked as the same file. A lock file that is a symbolic link (planted, to
make the scan create or truncate a file elsewhere) is refused, never followed. Only the scanning process holds the lock: a process forked from it (a DataLoader worker,
which can outlive a scan killed with SIGKILL by seconds) closes its copy of the descriptor at once, so the lock
goes when the scan does, and "another scan is writing" is only ever said while one is. (Windows does not fork:
its workers are spawned, and inherit no descriptor Python opened.)
"""
from __future__ import annotations

import errno
import os
import stat
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


_held: set[int] = set()  # the descriptors of the locks this process holds


def _close_held_in_child() -> None:
    for fd in _held:
        os.close(fd)
    _held.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_close_held_in_child)


def _open_existing_report(report: Path) -> int | None:
    """A read-only descriptor of the regular file ``report`` to lock, or None (not there yet, not readable, not a
    regular file: nothing another name could share)."""
    try:
        fd = os.open(report, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


class ReportBusy(Exception):
    """Another scan holds the report's lock."""


class ReportLock:
    """``acquire()`` or raise ReportBusy (ReportError when the folder cannot be written); ``release()`` removes the
    lock file. A context manager as well."""

    def __init__(self, report: Path):
        self.report = Path(report)
        real = Path(os.path.realpath(self.report))
        self.path = real.with_name(real.name + ".lock")
        self._fd: int | None = None
        self._report_fd: int | None = None  # the existing report's own inode, locked too

    def acquire(self) -> ReportLock:
        self._acquire_lock_file()
        if fcntl is not None and (fd := _open_existing_report(self.report)) is not None:
            if not try_lock(fd):
                os.close(fd)
                self.release()
                raise ReportBusy(f"another scan is writing {self.report} under another name (a hard link to it)")
            self._report_fd = fd
            _held.add(fd)
        return self

    def _acquire_lock_file(self) -> None:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
                             | getattr(os, "O_NOFOLLOW", 0), 0o644)
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    os.close(fd)
                    raise OSError(errno.EINVAL, f"its lock file {self.path} is not a regular file")
            except OSError as exc:  # the lock is the scan's first write: name the report, not the lock file
                if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink: someone made it, not a scan
                    exc = OSError(exc.errno, f"its lock file {self.path} is a symbolic link, which no scan makes: "
                                             "remove it")
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
                _held.add(fd)
                return
            os.close(fd)

    def release(self) -> None:
        if self._report_fd is not None:
            _held.discard(self._report_fd)
            os.close(self._report_fd)
            self._report_fd = None
        if self._fd is None:
            return
        _held.discard(self._fd)
        unlock_and_remove(self._fd, self.path)  # POSIX: while still holding the lock, see acquire
        self._fd = None

    def __enter__(self) -> ReportLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
