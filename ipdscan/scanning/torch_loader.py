"""The torch backend's executor: DataLoader workers run ``cpu_stage.prepare_batch`` on the plan's items, and on
CUDA a reader thread (``device_stage.in_background``) keeps one batch ahead of the scoring, decoding plain JPEGs
on the GPU there when the plan says so.

Work is split between workers in batches of ``batch_size`` consecutive items (batch k goes to worker k mod W).
Every worker walks the same lazy item stream and keeps only its own batches, so nothing is ever held whole in
memory, and because the DataLoader takes batches from workers round-robin, they come back in input order.
Workers cannot read this process's stdin: they read a copy that this process makes as lines arrive
(``stdin_spool``). Everything that crosses to them is picklable (the dataset holds stdin only when "-" is an input,
and then the spool's copy), so they start under any start method: fork, or spawn (Windows, macOS, and
forkserver, Python 3.14's default on Linux).
"""
from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..interrupt import as_worker
from .cpu_stage import ScanBatch, prepare_batch
from .device_stage import decode_on_device, in_background
from .plan import ScanPlan
from .sources import selected_items
from .stdin_spool import StdinSpool
from .worker_pool import batches_of


class ScanDataset(IterableDataset):
    """Yields the ScanBatches of this worker's batches of the item stream."""

    def __init__(self, plan: ScanPlan, stdin=None):
        self.plan, self.stdin = plan, stdin

    def __iter__(self) -> Iterator[ScanBatch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        items = selected_items(self.plan.inputs, self.plan.options, self.stdin)
        for position, batch in enumerate(batches_of(items, self.plan.options.batch_size)):
            if position % workers == worker:
                yield prepare_batch(batch, self.plan)


def loader_batches(plan: ScanPlan, stdin=None) -> Iterator[ScanBatch]:
    """The plan's items prepared batch by batch, in input order, by ``plan.workers`` DataLoader workers."""
    reads_stdin = "-" in plan.inputs
    spool = StdinSpool(stdin, plan.options.null) if reads_stdin and plan.workers > 0 else None
    # batch_size=None: each item of the dataset is a whole ScanBatch, passed through as it is.
    loader = DataLoader(ScanDataset(plan, spool.lines if spool else stdin if reads_stdin else None), batch_size=None,
                        num_workers=plan.workers, persistent_workers=False,
                        prefetch_factor=4 if plan.workers else None, worker_init_fn=as_worker if plan.workers else None)
    try:
        if plan.on_cuda:
            # Iterated lazily: the reader thread starts the workers and does the device decoding.
            yield from in_background(decode_on_device(batch, plan) if plan.decodes_on_device else batch
                                     for batch in loader)
        else:
            yield from loader
    finally:
        if spool:
            spool.close()
