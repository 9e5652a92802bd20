"""Inputs -> Items: the files and URLs a scan covers, in a deterministic order, found lazily.

An input is an image file, a directory (walked recursively), a URL list (``.txt``: one URL a line;
``.csv``: a ``url`` column), an http(s) URL, or ``-`` for inputs read from stdin one a line.
Nothing here reads pixels, and nothing raises on a bad input: a path or URL that is already known
to fail becomes an Item with an ``error_code`` (``formats.ERROR_CODES``), so it gets its row in the report
like any other. Folders are walked by ``walk.walk_tree``; files not named like images are kept by their first
bytes (``formats.signature_format``).
"""
from __future__ import annotations

import csv
import errno
import functools
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, TextIO

from .formats import SIGNATURE_BYTES, signature_format
from .item import Item
from .local_files import open_regular, os_error_code
from .shards import shard_filter
from .urls import ARGUMENT_URL, url_problem
from .walk import walk_tree

if TYPE_CHECKING:
    from .options import ScanOptions

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff",
                              ".heic", ".heif", ".avif"})
URL_LIST_EXTENSIONS = frozenset({".txt", ".csv"})
# Characters of one input: far over any path (PATH_MAX is 4096 bytes) or URL a server accepts. A longer stdin
# line is kept only up to STDIN_LINE_BYTES (which decode to more than MAX_INPUT characters) and is an error row.
MAX_INPUT = 65_536
STDIN_LINE_BYTES = 4 * MAX_INPUT + 4  # UTF-8 takes at most 4 bytes a character


def selected_items(inputs: Iterable[str], options: ScanOptions, stdin=None) -> Iterator[Item]:
    """The inputs a scan with ``options`` covers, after --exclude, sharding and resume filtering, in order."""
    items = iter_items(inputs, hidden=options.hidden, stdin=stdin, null=options.null, report=options.report_identity)
    if options.exclude:
        from ..reports.suppress import Exclusions  # the ignore files' glob rule
        exclusions = Exclusions(options.exclude)
        items = (item for item in items if item.kind != "file" or not exclusions.excluded(item.input))
    if options.shard:
        items = shard_filter(items, options.shard)
    if options.skip:
        items = (item for item in items if not options.skip(item.redacted))  # as the report wrote it
    return items


def iter_items(inputs: Iterable[str], *, hidden: bool = False, stdin: TextIO | Iterable[str] | None = None,
               null: bool = False, report: tuple[int, int] | None = None) -> Iterator[Item]:
    """Yield an Item for every file and URL the inputs name, as soon as each is found.

    Directories are walked depth first, sorted by name at each level; hidden names (a leading '.')
    inside them are skipped unless ``hidden``. '-' reads more inputs from ``stdin`` (default: sys.stdin; a
    stream, or an iterable of lines), one a line (``null``: each ended by a NUL byte, as ``find -print0``
    writes them), where a '-' line is a plain path, not stdin again. A stdin name that is the file ``report``
    ((device, inode): the report being written) is an ``is_the_report`` row, never read.
    """
    for argument in inputs:
        if argument == "-":
            for line in _stdin_lines(stdin, null):
                if line.strip():
                    yield from _items_for(line, hidden, report)
        else:
            yield from _items_for(argument, hidden)


def url_item(url: str, where: str = "") -> Item:
    problem = url_problem(url)
    if problem is None:
        return Item(url, "url")
    code, message = problem
    return Item(url, "url", code, f"{where}: {message}" if where else message)


def path_error(path: str, exc: OSError) -> Item:
    return Item(path, "file", os_error_code(exc), f"{path}: {exc.strerror or exc}")


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _stdin_lines(stdin: TextIO | Iterable[str] | None, null: bool) -> Iterator[str]:
    stdin = sys.stdin if stdin is None else stdin
    if not hasattr(stdin, "read"):  # lines already: a test's list, or a StdinSpool's copy
        for line in stdin:
            yield line if null else line.rstrip("\r\n")
        return
    # The bytes, decoded like argv, so that names that are not UTF-8 survive a `find | ipdscan scan -`.
    for raw in stdin_names(stdin, null):
        yield os.fsdecode(raw)


def stdin_names(stdin: IO, null: bool = False) -> Iterator[bytes]:
    """The names in a stream, as bytes: its lines without their newline (and a CR before it), or with ``null``
    the runs of bytes each ended by a NUL. In time linear in the stream, however long its lines; a line over
    STDIN_LINE_BYTES is cut there (``_items_for`` makes it an error row), so memory stays bounded too.

    A real stream is read with os.read, never through sys.stdin: a thread blocked inside sys.stdin.buffer holds
    its lock, and a DataLoader worker forked meanwhile would hang on that lock when multiprocessing closes its
    copy of sys.stdin.
    """
    try:
        fd = stdin.fileno()
        read = functools.partial(os.read, fd)
    except (AttributeError, OSError, ValueError):  # io.StringIO, io.BytesIO, a test runner's stand-in
        read = getattr(stdin, "buffer", stdin).read
    end = b"\0" if null else b"\n"
    name = bytearray()
    while chunk := read(1 << 16):
        if isinstance(chunk, str):
            chunk = os.fsencode(chunk)
        start = 0
        while True:
            stop = chunk.find(end, start)
            piece = chunk[start:] if stop < 0 else chunk[start:stop]
            name += piece[:max(0, STDIN_LINE_BYTES - len(name))]
            if stop < 0:
                break
            yield bytes(name if null else name.removesuffix(b"\r"))
            name.clear()
            start = stop + 1
    if name:
        yield bytes(name if null else name.removesuffix(b"\r"))


def _items_for(argument: str, hidden: bool, report: tuple[int, int] | None = None) -> Iterator[Item]:
    # Neither can name a file: the long one was cut short, and os.stat raises ValueError on a NUL.
    if len(argument) > MAX_INPUT:
        shown = argument[:200] + "…"
        yield Item(shown, "file", "invalid_input", f"{shown}: over {MAX_INPUT:,} characters, longer than any file name or URL")
        return
    if ARGUMENT_URL.match(argument):
        yield url_item(argument)
        return
    if "\0" in argument:
        yield Item(argument, "file", "invalid_input", f"{argument}: holds a NUL byte, which no file name can")
        return
    try:
        info = os.stat(argument)
    except OSError as exc:
        yield path_error(argument, exc)
        return
    if (info.st_dev, info.st_ino) == report:
        yield Item(argument, "file", "is_the_report", f"{argument}: the report this scan writes (--out); not read")
    elif stat.S_ISDIR(info.st_mode):
        yield from walk_items(argument, info, hidden)
    elif not stat.S_ISREG(info.st_mode):
        yield Item(argument, "file", "not_a_file", f"{argument}: not a regular file (a FIFO, socket or device)")
    elif os.path.splitext(argument)[1].lower() in URL_LIST_EXTENSIONS:
        yield from _url_list(argument)
    else:
        yield Item(argument, "file")  # named explicitly: the decoder judges what it is


def walk_items(root: str, root_info: os.stat_result, hidden: bool = False,
               enter: Callable[[str], bool] | None = None) -> Iterator[Item]:
    """Image files under ``root`` (by name, or by their first bytes), in ``walk_tree``'s order (which ``enter``
    prunes), and an error Item for each directory that loops or cannot be listed."""
    for path, info, error in walk_tree(root, root_info, hidden, enter):
        name = os.path.basename(path)
        if error is not None:
            # A dangling link is noise unless it claims to be an image; a link loop may hide a directory.
            if info is not None or error.errno == errno.ELOOP or is_image_name(name):
                yield path_error(path, error)
        elif stat.S_ISREG(info.st_mode):
            if is_image_name(name) or _sniffed(path, info):
                yield Item(path, "file")
        elif not stat.S_ISDIR(info.st_mode) and is_image_name(name):
            # a FIFO, socket or device named like an image: stat'ed, never opened
            yield Item(path, "file", "not_a_file", f"{path}: not a regular file (a FIFO, socket or device)")


def _sniffed(path: str, info: os.stat_result) -> bool:
    if info.st_size < 4:
        return False
    try:
        fd = open_regular(path)
    except OSError:
        return False  # unreadable and not named like an image: nothing says it is one
    try:
        return bool(signature_format(os.read(fd, SIGNATURE_BYTES)))
    except OSError:
        return False
    finally:
        os.close(fd)


def _url_list(path: str) -> Iterator[Item]:
    """The URLs of a .txt (one a line, '#' comments) or .csv (a 'url' column) list, read lazily."""
    try:
        stream = open(path, encoding="utf-8-sig", errors="replace", newline="")
    except OSError as exc:
        yield path_error(path, exc)
        return
    with stream:
        try:
            if path.lower().endswith(".csv"):
                yield from _csv_urls(path, stream)
            else:
                for number, line in enumerate(stream, 1):
                    line = line.strip()
                    if line and not line.startswith("#"):
                        yield url_item(line, f"{path}:{number}")
        except OSError as exc:  # a read error or a malformed CSV stops the list, not the scan
            yield path_error(path, exc)
        except csv.Error as exc:
            yield Item(path, "file", "bad_url_list", f"{path}: {exc}")


def _csv_urls(path: str, stream: TextIO) -> Iterator[Item]:
    reader = csv.reader(stream)
    header = next(reader, None) or []
    columns = [name.strip().lower() for name in header]
    if "url" not in columns:
        yield Item(path, "file", "bad_url_list", f"{path}: no 'url' column in the header {header!r}")
        return
    column = columns.index("url")
    for row in reader:
        url = row[column].strip() if column < len(row) else ""
        if url:
            yield url_item(url, f"{path}:{reader.line_num}")
