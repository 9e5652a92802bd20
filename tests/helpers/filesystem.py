"""Local-file helpers for the tests of reading files: FIFOs that must never be opened, files only root could read.

    @posix                                      skip where FIFOs, fork and permission bits do not exist
    finishes(function, seconds=20.0)           function()'s value, or a test failure if it blocks
    unblock_fifo(path)                          release a reader stuck opening the FIFO ``path``
    run_unprivileged(function, *args)           function(*args) in a forked child that is not root -> its value

The fixtures that go with them (``opened_paths``, ``shared_tmp``) are in tests/conftest.py.
"""
from __future__ import annotations

import json
import os
import threading
import traceback

import pytest

posix = pytest.mark.skipif(os.name != "posix", reason="FIFOs, fork and permission bits are POSIX")


def finishes(function, seconds: float = 20.0):
    """function()'s value, or a failure if it blocks (as opening a FIFO without a writer would)."""
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("value", function()), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{function} blocked: it must never open a FIFO")
    return box["value"]


def unblock_fifo(path):
    """Open the writing end without waiting, which releases any reader stuck in open()."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # no reader: nothing was stuck


def run_unprivileged(function, *args):
    """function(*args) in a forked child that, when we are root (who reads everything), first becomes
    nobody; its value comes back as JSON."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            with os.fdopen(write_end, "w") as out:
                json.dump({"value": function(*args)}, out)
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as results:
        text = results.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0, "the unprivileged child failed (its traceback is in the captured stderr)"
    return json.loads(text)["value"]
