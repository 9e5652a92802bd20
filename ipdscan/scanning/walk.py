"""The folder walk: every entry below a folder, depth first and sorted by name, never round a symlink loop, each
directory's names held packed. Listing (``sources``) and the training data (``datasets``) both walk with it."""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable, Iterator


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
