"""The device stage, in the torch backend's scoring process: a batch's crops onto the scoring device, its plain
JPEGs decoded and cropped there (``device_decode``: nvjpeg), in a reader thread (``in_background``) that runs one
batch ahead of the scoring. The crops are cut by the CPU stage's own code (``tiles.crops_of``), on tensors."""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import replace

import torch

from .cpu_stage import ScanBatch, decode_on_cpu
from .device_decode import decode_jpegs
from .plan import ScanPlan
from .tiles import crops_of


def decode_on_device(batch: ScanBatch, plan: ScanPlan) -> ScanBatch:
    """The batch with all its crops on the plan's device, in sample order, its JPEGs decoded and cropped there.

    A JPEG the device cannot decode is decoded on the CPU instead, and fails its own row if that fails too.
    """
    device, preprocessing = torch.device(plan.device), plan.preprocessing
    max_pixels, tiles = plan.options.max_pixels, plan.options.tiles
    pending = [sample for sample in batch.samples if sample.jpeg is not None]
    encoded = torch.from_numpy(batch.encoded)
    files = [encoded[sample.span[0]:sample.span[1]] for sample in pending]
    decoded = iter(zip(files, decode_jpegs(files, [sample.jpeg for sample in pending], device)))
    samples, parts, start, worker_crops = [], [], 0, torch.from_numpy(batch.crops)
    for sample in batch.samples:
        if sample.crop_count:  # decoded by a worker
            parts.append(worker_crops[start:start + sample.crop_count].to(device))
            start += sample.crop_count
        elif sample.jpeg is not None:
            file, pixels = next(decoded)
            if pixels is None:
                known = {"sha256": sample.columns["sha256"], "bytes": sample.columns["bytes"]}
                sample = decode_on_cpu(sample.input, file.numpy().tobytes(), known, preprocessing, max_pixels, tiles)
                crops = None if sample.crops is None else torch.from_numpy(sample.crops)
            else:
                crops, offsets = crops_of(pixels, preprocessing, tiles)
                sample = replace(sample, offsets=offsets)
            if crops is not None:
                parts.append(crops.to(device))
                sample = replace(sample, crops=None, jpeg=None, crop_count=len(crops))
        samples.append(sample)
    crops = torch.cat(parts) if parts else torch.empty(0, 3, 0, 0, dtype=torch.uint8)
    return ScanBatch(samples, crops, batch.encoded[:0])


def in_background(batches: Iterator, depth: int = 2) -> Iterator:
    """Run ``batches`` in a thread, up to ``depth`` ahead: the next batch is read and decoded while this one is scored.

    torch releases the GIL inside its kernels and nvjpeg calls, so the threads can overlap (how much they did on
    an H200: benchmarks/RESULTS.md). An exception in the thread is raised here; closing this generator early
    stops the thread.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def offer(item) -> bool:
        """Queue ``item`` unless the consumer stops first; whether it was queued."""
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def produce():
        try:
            for batch in batches:
                if not offer(batch):
                    return
            offer(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            offer(exc)

    thread = threading.Thread(target=produce, name="ipdscan-reader", daemon=True)
    thread.start()
    try:
        while (batch := ready.get()) is not done:
            if isinstance(batch, BaseException):
                raise batch
            yield batch
    finally:
        stop.set()
        thread.join()
