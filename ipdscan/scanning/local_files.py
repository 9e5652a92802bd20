"""Local files as fetch reads them: opened only if regular (a FIFO that replaced a file is never waited on), and
an OSError's errno turned into the row's error code. The folder walk's sniffing opens files the same way."""
from __future__ import annotations

import errno
import os
import stat

from .fetch_options import FetchError


def os_error_code(exc: OSError) -> str:
    """The error code for an OSError met while listing or reading a path."""
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "not_found"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission_denied"
    if exc.errno == errno.ELOOP:
        return "symlink_loop"
    if exc.errno in (errno.EISDIR, errno.ENXIO):  # open_regular's refusals
        return "not_a_file"
    return "read_error"


def open_regular(path: str) -> int:
    """A read-only descriptor for ``path`` if it is a regular file; raises IsADirectoryError or
    OSError(ENXIO) otherwise. O_NONBLOCK keeps open() from ever waiting on a FIFO that replaced
    the file since it was stat'ed; it changes nothing for regular files."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        raise OSError(errno.ENXIO, "not a regular file", path)
    return fd


def read_file(path: str, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` of them; raises FetchError."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # decided from stat: a FIFO or device is never opened
            raise FetchError("not_a_file", f"{path}: not a regular file")
        if info.st_size > max_bytes:
            raise FetchError("too_large", f"{path}: {info.st_size} bytes, more than the limit of {max_bytes}")
        with os.fdopen(open_regular(path), "rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise FetchError(os_error_code(exc), f"{path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:  # it grew after the stat
        raise FetchError("too_large", f"{path}: more than the limit of {max_bytes} bytes")
    return data
