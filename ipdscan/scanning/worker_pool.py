"""The torch-free executor (the onnxruntime backend's): this process lists the items lazily and hands batches of
them to spawned worker processes, which run ``cpu_stage.prepare_batch``; the batches come back in input order.

At most ``AHEAD`` batches per worker are listed ahead of the scoring, so a URL list of a million lines is never
held whole; stdin is read here, as it is listed (no spool: the workers never read it). ``workers=0``, or a scan
that lists no more than one batch, prepares in this process. Workers leave Ctrl-C and SIGTERM to this process,
which stops the scan (``interrupt.as_worker``).
"""
from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import chain, islice

from ..interrupt import as_worker
from .cpu_stage import ScanBatch, prepare_batch
from .plan import ScanPlan
from .sources import selected_items

AHEAD = 2  # batches queued per worker: one being prepared, one waiting


def batches_of(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def pool_batches(plan: ScanPlan, stdin=None) -> Iterator[ScanBatch]:
    """The plan's items prepared batch by batch, in input order, by ``plan.workers`` spawned processes."""
    batches = batches_of(selected_items(plan.inputs, plan.options, stdin), plan.options.batch_size)
    portable = plan.for_workers()
    head = list(islice(batches, 2))
    batches = chain(head, batches)
    # A scan of one batch is prepared here: starting a worker (a fresh interpreter, ~0.5 s) would cost more than
    # it overlaps, and a single file's first score is what a pre-commit hook waits for.
    if plan.workers == 0 or len(head) < 2:
        for items in batches:
            yield prepare_batch(items, portable)
        return
    # spawn: a fresh interpreter per worker (safe beside threads, and the same on every platform).
    pool = ProcessPoolExecutor(plan.workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=as_worker)
    pending = deque()
    try:
        for items in batches:
            pending.append(pool.submit(prepare_batch, items, portable))
            if len(pending) > plan.workers * AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=not pending, cancel_futures=True)  # stopped early: queued batches are dropped
