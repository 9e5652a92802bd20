"""The fetch stage: bytes for an Item, a local file through ``local_files`` (FIFOs and devices refused from stat,
the size cap) or a URL through ``http_get`` (address checks, deadlines, caps, retries); ``fetch_many`` runs them
in threads, in input order, a few at a time per host. Failures are ``FetchError`` values.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlsplit

from ..net.http_get import fetch_url
from .fetch_options import FetchError, FetchOptions
from .item import Item
from .local_files import read_file


def read_item(item: Item, options: FetchOptions = FetchOptions()) -> bytes:
    """The item's bytes; raises FetchError. An empty file gives b"" (the decoder reports it)."""
    if item.error_code:
        raise FetchError(item.error_code, item.error or item.error_code)
    if item.kind == "url":
        return fetch_url(item.input, options)
    return read_file(item.input, options.max_bytes)


def fetch_many(items: Iterable[Item], options: FetchOptions, *, concurrency: int = 8,
               per_host: int = 4) -> Iterator[tuple[Item, bytes | FetchError]]:
    """(item, bytes or FetchError) for each item, in input order, fetched by ``concurrency`` threads.

    At most 2 x concurrency items are taken from ``items`` ahead of the one yielded, so an endless
    stream stays flat in memory, and at most ``per_host`` requests go to one host at a time.
    """
    slots = _HostSlots(per_host)
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="ipdscan-fetch")
    pending: deque[tuple[Item, Future]] = deque()
    try:
        for item in items:
            pending.append((item, pool.submit(_fetch_one, item, options, slots)))
            if len(pending) >= 2 * max(1, concurrency):
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        # Abandoned early: drop what has not started; running fetches end by their own deadlines.
        pool.shutdown(wait=False, cancel_futures=True)


class _HostSlots:
    """A semaphore of ``per_host`` slots for each host with requests in flight, dropped when idle."""

    def __init__(self, per_host: int):
        self.per_host = max(1, per_host)
        self.lock = threading.Lock()
        self.hosts: dict[str, list] = {}  # host -> [semaphore, requests holding or waiting]

    @contextmanager
    def hold(self, host: str):
        with self.lock:
            entry = self.hosts.setdefault(host, [threading.Semaphore(self.per_host), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self.lock:
                entry[1] -= 1
                if not entry[1]:
                    del self.hosts[host]


def _fetch_one(item: Item, options: FetchOptions, slots: _HostSlots) -> bytes | FetchError:
    try:
        if item.kind == "url" and not item.error_code:
            with slots.hold((urlsplit(item.input).hostname or "").lower()):
                return read_item(item, options)
        return read_item(item, options)
    except FetchError as exc:
        return exc
    except Exception as exc:  # a bug here must cost one row, not the scan
        return FetchError("read_error", f"{type(exc).__name__}: {exc}")
