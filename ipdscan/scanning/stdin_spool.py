"""Standard input for the torch backend's DataLoader worker processes, which cannot read it themselves.

A worker process does not share its parent's stdin (multiprocessing closes it in the child), stdin can be read
only once, and every worker walks the whole input stream to pick its own chunks (see torch_loader.py). So the scanning
process copies stdin, line by line as it arrives, into a temporary file that each worker follows like ``tail -f``
until an end mark. The scan starts on the first lines, and the names wait on disk, not in memory. The copy holds
one name a line, its backslashes and newlines escaped (a NUL-separated name may hold a newline).
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from .sources import stdin_names

LINE, END = b"+", b".\n"  # every copied line starts with LINE, so no input line can be mistaken for END
ESCAPED = re.compile(rb"\\(.)", re.DOTALL)


@dataclass(frozen=True)
class SpooledLines:
    """The lines of a StdinSpool, as str like sys.stdin's (undecodable bytes as surrogates); picklable."""

    path: str
    owner_pid: int  # the scanning process: if it dies before the end mark, the readers stop too
    poll_s: float = 0.05

    def __iter__(self) -> Iterator[str]:
        with open(self.path, "rb") as file:
            while True:
                position = file.tell()
                line = file.readline()
                if line == END:
                    return
                if line.endswith(b"\n"):
                    yield os.fsdecode(ESCAPED.sub(_unescape, line[len(LINE):-1]))
                    continue
                file.seek(position)  # caught up with the copy, maybe mid-line: wait for more
                if not _alive(self.owner_pid):
                    return
                time.sleep(self.poll_s)


class StdinSpool:
    """Copies the names in ``stdin`` (default: sys.stdin's bytes; one a line, or ended by NULs with ``null``) into a
    temporary file in a background thread; ``lines`` reads them."""

    def __init__(self, stdin: IO | None = None, null: bool = False):
        fd, path = tempfile.mkstemp(prefix="ipdscan-stdin-", suffix=".lines")
        self.lines = SpooledLines(path, os.getpid())
        threading.Thread(target=self._copy, args=(stdin if stdin is not None else sys.stdin, os.fdopen(fd, "wb"), null),
                         name="ipdscan-stdin", daemon=True).start()

    @staticmethod
    def _copy(stdin: IO, spool: IO[bytes], null: bool) -> None:
        with spool:
            try:
                for name in stdin_names(stdin, null):
                    spool.write(LINE + name.replace(b"\\", b"\\\\").replace(b"\n", b"\\n") + b"\n")
                    spool.flush()  # the workers read what is in the file, not what is in this buffer
            finally:
                spool.write(END)  # also when reading fails: the workers end with the lines they have

    def close(self) -> None:
        """Remove the file; a copy still blocked on stdin writes on into the unlinked file, harmlessly."""
        try:
            os.unlink(self.lines.path)
        except FileNotFoundError:
            pass


def _unescape(match: re.Match) -> bytes:
    return b"\n" if match[1] == b"n" else match[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
