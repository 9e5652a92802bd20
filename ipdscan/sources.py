"""Inputs -> Items: the files and URLs a scan covers, in a deterministic order, found lazily.

An input is an image file, a directory (walked recursively), a URL list (``.txt``: one URL a line;
``.csv``: a ``url`` column), an http(s) URL, or ``-`` for inputs read from stdin one a line.
Nothing here reads pixels, and nothing raises on a bad input: a path or URL that is already known
to fail becomes an Item with an ``error_code``, so it gets its row in the report like any other.

Listing error codes: not_found, permission_denied, not_a_file, symlink_loop, read_error,
invalid_url, unsupported_scheme, bad_url_list, invalid_input.
"""
from __future__ import annotations

import csv
import errno
import functools
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from .shards import shard_filter

if TYPE_CHECKING:
    from .options import ScanOptions

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff",
                              ".heic", ".heif", ".avif"})
URL_LIST_EXTENSIONS = frozenset({".txt", ".csv"})
URL_SCHEMES = ("http", "https")
# Schemes that are plainly URLs even without "//"; anything else without "//" is just not a URL.
OPAQUE_SCHEMES = frozenset({"javascript", "data", "mailto", "file", "about", "blob", "vbscript", "ftp"})
SNIFF_BYTES = 32
# Characters of one input: far over any path (PATH_MAX is 4096 bytes) or URL a server accepts. A longer stdin
# line is kept only up to STDIN_LINE_BYTES (which decode to more than MAX_INPUT characters) and is an error row.
MAX_INPUT = 65_536
STDIN_LINE_BYTES = 4 * MAX_INPUT + 4  # UTF-8 takes at most 4 bytes a character
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")
BMP_HEADER_SIZES = (12, 40, 52, 56, 64, 108, 124)  # the DIB header sizes real BMPs use
ARGUMENT_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# The user:password@ of a URL, up to the authority's last "@" (an unescaped "@" in a password is common).
URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#]*@")


@dataclass(frozen=True)
class Item:
    input: str  # the path as found (non-UTF-8 names via os.fsdecode's surrogateescape) or the URL
    kind: str  # "file" | "url"
    error_code: str = ""  # set when listing already knows this input fails
    error: str = ""

    @property
    def shown(self) -> str:
        """The input as reports and the terminal show it: a URL without its credentials (the fetch uses them)."""
        return redact_credentials(self.input) if self.kind == "url" else self.input


def redact_credentials(text: str) -> str:
    """``text`` with the user:password@ of every URL in it replaced by ***@: https://u:p@host/x -> https://***@host/x."""
    return URL_CREDENTIALS.sub(r"\1***@", text)


def selected_items(inputs: Iterable[str], options: ScanOptions, stdin=None) -> Iterator[Item]:
    """The inputs a scan with ``options`` covers, after sharding and resume filtering, in order."""
    items = iter_items(inputs, hidden=options.hidden, stdin=stdin, null=options.null)
    if options.shard:
        items = shard_filter(items, options.shard)
    if options.skip:
        items = (item for item in items if not options.skip(item.shown))  # as the report wrote it
    return items


def iter_items(inputs: Iterable[str], *, hidden: bool = False, stdin: TextIO | Iterable[str] | None = None,
               null: bool = False) -> Iterator[Item]:
    """Yield an Item for every file and URL the inputs name, as soon as each is found.

    Directories are walked depth first, sorted by name at each level; hidden names (a leading '.')
    inside them are skipped unless ``hidden``. '-' reads more inputs from ``stdin`` (default: sys.stdin; a
    stream, or an iterable of lines), one a line (``null``: each ended by a NUL byte, as ``find -print0``
    writes them), where a '-' line is a plain path, not stdin again.
    """
    for argument in inputs:
        if argument == "-":
            for line in _stdin_lines(stdin, null):
                if line.strip():
                    yield from _items_for(line, hidden)
        else:
            yield from _items_for(argument, hidden)


def url_problem(url: str) -> tuple[str, str] | None:
    """(error_code, message) if ``url`` cannot be fetched as it is written, else None."""
    if not url.isprintable():  # spaces in a path are quoted when fetched; tabs and controls are damage
        return "invalid_url", f"invalid URL {url!r}: contains control characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        return "invalid_url", f"invalid URL {url!r}: {exc}"
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        if scheme and ("://" in url or scheme in OPAQUE_SCHEMES):
            return "unsupported_scheme", f"unsupported URL scheme {scheme!r} (only http and https): {url}"
        return "invalid_url", f"invalid URL {url!r}: no http:// or https:// scheme"
    if not parts.hostname or " " in parts.netloc:
        return "invalid_url", f"invalid URL {url!r}: no valid host"
    if port == 0:
        return "invalid_url", f"invalid URL {url!r}: port 0"
    return None


def url_item(url: str, where: str = "") -> Item:
    problem = url_problem(url)
    if problem is None:
        return Item(url, "url")
    code, message = problem
    return Item(url, "url", code, f"{where}: {message}" if where else message)


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


def path_error(path: str, exc: OSError) -> Item:
    return Item(path, "file", os_error_code(exc), f"{path}: {exc.strerror or exc}")


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


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def sniff_image(head: bytes) -> bool:
    """Whether the first bytes of a file look like an image format a scan may meet."""
    return (head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*"))
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
            or (head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS)
            or (head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in BMP_HEADER_SIZES))


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


def _items_for(argument: str, hidden: bool) -> Iterator[Item]:
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
    if stat.S_ISDIR(info.st_mode):
        yield from walk_items(argument, info, hidden)
    elif not stat.S_ISREG(info.st_mode):
        yield Item(argument, "file", "not_a_file", f"{argument}: not a regular file (a FIFO, socket or device)")
    elif os.path.splitext(argument)[1].lower() in URL_LIST_EXTENSIONS:
        yield from _url_list(argument)
    else:
        yield Item(argument, "file")  # named explicitly: the decoder judges what it is


def walk_tree(root: str, root_info: os.stat_result, hidden: bool = False,
              enter: Callable[[str], bool] | None = None) -> Iterator[tuple[str, os.stat_result | None, OSError | None]]:
    """(path, stat, error) for every entry below ``root``, depth first and sorted by name at each level.

    Symlinks are followed, and symlinked directories too, except into a directory that is being walked already
    (a loop: yielded with an ELOOP error) or that was walked before through another link (skipped: its entries
    were yielded). A directory is walked unless ``enter(path)`` says no. Each entry is stat'ed only when the walk
    reaches it, so one that changed since its directory was listed is judged as it is now. ``error`` is set for an
    entry that cannot be stat'ed (stat None: a dangling link, a link loop, a vanished file) and for a directory
    that loops or cannot be listed (stat set; ``root`` itself included).
    """
    key = (root_info.st_dev, root_info.st_ino)
    visited, walking = {key}, [key]
    names = _list_directory(root)
    if isinstance(names, OSError):
        yield root, root_info, names
        return
    stack = [(root, iter(names))]
    while stack:
        directory, remaining = stack[-1]
        name = next(remaining, None)
        if name is None:
            stack.pop()
            walking.pop()
            continue
        if not hidden and name.startswith("."):
            continue
        path = os.path.join(directory, name)
        try:
            info = os.stat(path)  # follows symlinks
        except OSError as exc:
            yield path, None, exc
            continue
        if not stat.S_ISDIR(info.st_mode):
            yield path, info, None
            continue
        key = (info.st_dev, info.st_ino)
        if key in walking:
            yield path, info, OSError(errno.ELOOP, "links back to a directory it is inside", path)
        elif key not in visited:
            visited.add(key)
            yield path, info, None
            if enter is None or enter(path):
                children = _list_directory(path)
                if isinstance(children, OSError):
                    yield path, info, children
                else:
                    stack.append((path, iter(children)))
                    walking.append(key)


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


class SortedNames:
    """A directory's entry names in sorted order, packed into one string with a NUL after each name
    (no file name holds one): a byte a character for ASCII names (two or four where the directory
    has wider ones) where a list of os.DirEntry held ~500 bytes an entry, in every DataLoader
    worker of a scan, as each walks the same directories."""

    __slots__ = ("_packed",)

    def __init__(self, names: Iterable[str]):
        ordered = sorted(names)
        ordered.append("")  # a NUL after the last name too; no names pack to ""
        self._packed = "\0".join(ordered)

    def __iter__(self) -> Iterator[str]:
        packed, start = self._packed, 0
        while start < len(packed):
            end = packed.index("\0", start)
            yield packed[start:end]
            start = end + 1


def _list_directory(path: str) -> SortedNames | OSError:
    try:
        return SortedNames(os.listdir(path))  # str names: os.fsdecode's surrogateescape for non-UTF-8 bytes
    except OSError as exc:
        return exc


def _sniffed(path: str, info: os.stat_result) -> bool:
    if info.st_size < 4:
        return False
    try:
        fd = open_regular(path)
    except OSError:
        return False  # unreadable and not named like an image: nothing says it is one
    try:
        return sniff_image(os.read(fd, SNIFF_BYTES))
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
