"""Files appear whole or not at all: written under a temporary name beside the file, then renamed into place.

Every writer publishes through here: ``publish`` (a file written in one go), and ``publish_spooled`` for the
reports whose rows come before their header is complete (.csv, .json, .sarif): rows wait in ``Spool`` files.
A report to ``STDOUT`` (``--out -``) is written to standard output instead, as UTF-8 whatever the locale; when
its reader goes (``--out - | head -1``), writing raises ``ReaderGone`` and the rest goes nowhere.
"""
from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .output_format import STDOUT


class ReaderGone(Exception):
    """Standard output's reader has gone (``--out - | head -1``): the scan ends there, quietly, as a producer in a
    pipeline does."""


def discard_stdout() -> None:
    """Point standard output at the null device: what is still written (a buffer flushed at exit) goes nowhere,
    instead of ending the run with a BrokenPipeError."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)


@contextmanager
def reader_gone_on_broken_pipe() -> Iterator[None]:
    """A BrokenPipeError in the block (a write to standard output whose reader has gone) as ReaderGone."""
    try:
        yield
    except BrokenPipeError:
        discard_stdout()
        raise ReaderGone() from None


class ReportError(OSError):
    """A report that cannot be written. The message names the report, never the temporary file the
    writer was using, which the user never asked for and will not find."""

    def __init__(self, path: Path, exc: OSError):
        super().__init__(exc.errno, f"cannot write the report {path}: {exc.strerror or exc}")

    def __str__(self) -> str:
        return self.strerror


def file_identity(path: Path | str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path`` (through any link), or None if there is none: what makes two names
    one file (a hard link, a symlink, a path through another mount of the same folder)."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino


def overwritten_input(output: Path, inputs: Iterable[str | Path]) -> str | None:
    """The input that ``output`` is, by device and inode, or None: every command that writes a file refuses to
    write over one it reads (``scan``, ``merge``, ``report``, ``explain``). URLs and "-" are no files."""
    written = file_identity(output) if output != STDOUT else None
    if written is None:
        return None  # not there yet: nothing to overwrite
    for argument in map(str, inputs):
        if argument != "-" and "://" not in argument and file_identity(argument) == written:
            return argument
    return None


def check_output_folder(path: Path) -> None:
    """FileNotFoundError unless the folder ``path`` is to be written in exists: said before any work starts, for
    every file a command writes (reports, eval tables, heatmaps)."""
    if path != STDOUT and not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: directory {path.parent} does not exist")


def write_atomically(path: Path, write: Callable[[IO], None], *, binary: bool = False) -> None:
    """Create ``path`` with ``write(file)``: under a temporary name in the same directory, made durable, then
    renamed over ``path``, so readers (and a rerun after a crash) see the old file or the new one, never half of
    one. Reports, checkpoints, training state and corpus images are all written through here.

    The file is created like any other the user writes (0666 less the umask, typically 0644), not 0600 as
    tempfile.mkstemp would make it.
    """
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        with open(partial, "xb") if binary else open(partial, "x", encoding="utf-8", newline="") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def publish(path: Path, write: Callable[[IO], None], *, binary: bool = False) -> None:
    """``write_atomically`` for a report: an OSError is raised as a ReportError naming ``path``."""
    if path == STDOUT:
        out = sys.stdout.buffer if binary else StdoutText()
        with reader_gone_on_broken_pipe():
            sys.stdout.flush()
            write(out)
            out.flush()
        return
    try:
        write_atomically(path, write, binary=binary)
    except OSError as exc:
        raise ReportError(path, exc) from exc


class Spool:
    """Rows waiting for a report that appears at close: an unnamed temporary file beside it, so on its file
    system (the copy is cheap) and gone by itself if the scan dies."""

    def __init__(self, report: Path, binary: bool = False):
        folder = None if report == STDOUT else report.parent  # a report to stdout spools in the temporary folder
        self.file: IO = tempfile.TemporaryFile(dir=folder) if binary else \
            tempfile.TemporaryFile("w+", encoding="utf-8", newline="", dir=folder)

    def write(self, data) -> None:
        self.file.write(data)

    def flush(self) -> None:
        self.file.flush()

    def copy_to(self, out: IO) -> None:
        self.file.seek(0)
        shutil.copyfileobj(self.file, out)

    def close(self) -> None:
        self.file.close()


def publish_spooled(path: Path, pieces: Iterable, *, binary: bool = False) -> None:
    """``publish`` the report made of ``pieces`` in order: text (or bytes) written as is, Spools copied in; the
    spools are closed, published or not."""
    pieces = list(pieces)

    def write(out: IO) -> None:
        for piece in pieces:
            if isinstance(piece, Spool):
                piece.copy_to(out)
            else:
                out.write(piece)

    try:
        publish(path, write, binary=binary)
    finally:
        for piece in pieces:
            if isinstance(piece, Spool):
                piece.close()


class StdoutText:
    """Standard output as a UTF-8 text file for the writers (reports are UTF-8 whatever the terminal's locale):
    text goes straight to ``sys.stdout.buffer``, looked up at each write, and is never closed."""

    def write(self, text: str) -> None:
        with reader_gone_on_broken_pipe():
            sys.stdout.buffer.write(text.encode("utf-8"))

    def flush(self) -> None:
        with reader_gone_on_broken_pipe():
            sys.stdout.buffer.flush()
