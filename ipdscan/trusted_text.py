"""The small files that tell a scan what to trust: ignore files, baselines, config files, report header files.

They can be planted by whoever wrote the scanned tree (a pull request), so every one of them is read by one rule,
``read_trusted_text``: a regular file (never a FIFO, a device or a file of /proc, /sys or /dev, whose "text" could
be the scanner's own environment), inside the folder it governs when it was found there rather than named by the
user (a symlink out of that folder is refused), and no larger than a cap. A problem with such a file is reported as
the file and line and what is wrong, never the line itself: the line may be someone else's secret.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

SYSTEM_TREES = ("/proc", "/sys", "/dev")  # "regular" files there are the system's, not the repository's


class TrustedFileError(ValueError):
    """A file that is not read: one line naming it and why."""


def read_trusted_text(path: Path | str, *, what: str, max_bytes: int, within: Path | str | None = None) -> str:
    """The UTF-8 text of ``path``, a ``what`` ("ignore file", "baseline", ...) of at most ``max_bytes`` bytes.

    ``within``: the folder the file was found in and governs; the file (symlinks resolved) must lie inside it.
    None for a file the user named. TrustedFileError says what is wrong with it, never what it holds.
    """
    data = _checked_bytes(path, what=what, max_bytes=max_bytes, within=within)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TrustedFileError(f"{path}:{line}: the {what} is not UTF-8 text") from None


def _checked_bytes(path: Path | str, *, what: str, max_bytes: int, within: Path | str | None = None) -> bytes:
    """``read_trusted_text``'s checks, the bytes unread as text."""
    real = os.path.realpath(path)
    if within is not None and os.path.commonpath([real, os.path.realpath(within)]) != os.path.realpath(within):
        raise TrustedFileError(f"{path}: the {what} is a link to a file outside {within}; it is not read")
    if any(real == tree or real.startswith(tree + os.sep) for tree in SYSTEM_TREES):
        raise TrustedFileError(f"{path}: the {what} is a system file ({real}), not one a person wrote; it is not read")
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise TrustedFileError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file (a FIFO, socket or device)"
        raise TrustedFileError(f"{path}: the {what} is {kind}; it is not read")
    with os.fdopen(fd, "rb") as file:
        try:
            data = file.read(max_bytes + 1) if info.st_size <= max_bytes else b""
        except OSError as exc:
            raise TrustedFileError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    if info.st_size > max_bytes or len(data) > max_bytes:
        raise TrustedFileError(f"{path}: the {what} is over {max_bytes:,} bytes, more than any {what} needs; "
                               "it is not read")
    return data

