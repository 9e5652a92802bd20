"""items -> DataLoader workers (fetch, decode, crop) -> device (score) -> Result, one per input, in input order.

Prints nothing: the CLI and the Python API both consume ``scan()``.

Work is split between DataLoader workers in chunks of ``batch_size`` consecutive items
(chunk k goes to worker k mod W). Every worker walks the same lazy item stream and keeps only
its own chunks, so nothing is ever held whole in memory, and because the DataLoader takes
batches from workers round-robin, results come back in input order.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .decode import DecodeError, decode
from .evidence import find_evidence
from .fetch import FetchError, FetchOptions, fetch_many
from .preprocess import Preprocessing, crop
from .result import Result
from .score import Detector, load_detector
from .sources import Item, iter_items, shard_filter
from .tiles import crop_tiles


@dataclass
class ScanOptions:
    batch_size: int = 32
    workers: int | None = None  # None: chosen from the device and the CPU count
    threshold: float = 0.5
    hidden: bool = False
    max_pixels: int = 100_000_000
    fetch: FetchOptions = field(default_factory=FetchOptions)
    fetch_concurrency: int = 8  # per worker; URL lists are latency-bound
    crops: int = 1  # >1: also score about this many tiles across the image (crops_max / crops_mean)
    shard: tuple[int, int] | None = None  # (K, N), 1-based
    skip: Callable[[str], bool] | None = None  # e.g. inputs already in a resumed report

    def resolved_workers(self, device: torch.device) -> int:
        if self.workers is not None:
            return max(0, self.workers)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        # On the CPU the model competes with decoding for cores: one worker keeps both busy.
        return min(16, cpus) if device.type == "cuda" else (1 if cpus > 1 else 0)


def selected_items(inputs: Iterable[str], options: ScanOptions, stdin=None) -> Iterator[Item]:
    """The inputs this scan covers, after sharding and resume filtering, in order."""
    items = iter_items(inputs, hidden=options.hidden, stdin=stdin)
    if options.shard:
        items = shard_filter(items, options.shard)
    if options.skip:
        items = (item for item in items if not options.skip(item.input))
    return items


Sample = tuple[Result, torch.Tensor | None, list[tuple[int, int]]]  # row, (K, 3, crop, crop) uint8, tile offsets


def prepare(item: Item, data: bytes | FetchError, preprocessing: Preprocessing, max_pixels: int, crops: int = 1) -> Sample:
    """Bytes -> (Result without score, crops: the centre crop first, then any tiles), or an error Result."""
    if isinstance(data, FetchError):
        return Result.failed(item.input, data.code, data.message), None, []
    known = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    try:
        decoded = decode(data, max_pixels=max_pixels)
    except DecodeError as exc:
        return Result.failed(item.input, exc.code, exc.message, **known), None, []
    except Exception as exc:  # a decoder bug must cost one row, not the scan
        return Result.failed(item.input, "decode_error", f"{type(exc).__name__}: {exc}", **known), None, []
    exif = decoded.exif
    result = Result(input=item.input, format=decoded.format, width=decoded.width, height=decoded.height,
                    frames=decoded.frames, exif_make=exif.get("make", ""), exif_model=exif.get("model", ""),
                    exif_software=exif.get("software", ""), exif_datetime=exif.get("datetime", ""),
                    **find_evidence(data).fields(), **known)
    centre = crop(decoded.pixels, preprocessing)[None]
    if crops <= 1:
        return result, centre, []
    tiles, offsets = crop_tiles(decoded.pixels, crops, preprocessing)
    return result, torch.cat([centre, tiles]), offsets


class ScanDataset(IterableDataset):
    """Yields (Result, crop or None) for this worker's chunks of the item stream."""

    def __init__(self, inputs: list[str], options: ScanOptions, preprocessing: Preprocessing, stdin=None):
        self.inputs, self.options, self.preprocessing, self.stdin = inputs, options, preprocessing, stdin

    def _my_items(self) -> Iterator[Item]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        chunk = self.options.batch_size
        for position, item in enumerate(selected_items(self.inputs, self.options, self.stdin)):
            if (position // chunk) % workers == worker:
                yield item

    def __iter__(self):
        fetched = fetch_many(self._my_items(), self.options.fetch, concurrency=self.options.fetch_concurrency)
        for item, data in fetched:
            yield prepare(item, data, self.preprocessing, self.options.max_pixels, self.options.crops)


def collate(samples: list[Sample]):
    crops = [c for _, c, _ in samples if c is not None]
    stacked = torch.cat(crops) if crops else torch.empty(0, 3, 0, 0, dtype=torch.uint8)
    return samples, stacked


def attach_scores(sample: Sample, scores: list[float], threshold: float, crop_size: int) -> Result:
    """Fill in the score (centre crop) and, with tiles, their max, mean and the best tile's box."""
    result, _, offsets = sample
    result.score = scores[0]
    result.label = "ai" if result.score >= threshold else "real"
    if offsets:
        tile_scores = scores[1:]
        best = max(range(len(tile_scores)), key=tile_scores.__getitem__)
        top, left = offsets[best]
        x, y = max(0, left), max(0, top)
        width, height = min(result.width, left + crop_size) - x, min(result.height, top + crop_size) - y
        result.crops_max, result.crops_mean = tile_scores[best], sum(tile_scores) / len(tile_scores)
        result.crops_max_tile = f"{x},{y},{width},{height}"
    return result


def scan_batches(inputs: Iterable[str] | str, detector: Detector | None = None, *, options: ScanOptions | None = None,
                 weights=None, device: str = "auto", stdin=None) -> Iterator[list[Result]]:
    """Scan inputs (paths, directories, URL lists, URLs, '-' for stdin) and yield scored Results batch by batch.

    Every input yields exactly one Result; failures are Results with status "error".
    """
    options = options or ScanOptions()
    detector = detector or load_detector(weights, device)
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    workers = options.resolved_workers(detector.device)
    if "-" in inputs and workers > 0 and stdin is None:
        workers = 0  # stdin can be read once only, so one process must own the stream
    dataset = ScanDataset(inputs, options, detector.preprocessing, stdin)
    loader = DataLoader(dataset, batch_size=options.batch_size, num_workers=workers, collate_fn=collate,
                        pin_memory=detector.device.type == "cuda",
                        persistent_workers=False, prefetch_factor=4 if workers else None)
    for samples, crops in loader:
        scores, start = detector.score(crops).tolist(), 0
        for sample in samples:
            if sample[1] is not None:
                count = len(sample[1])
                attach_scores(sample, scores[start:start + count], options.threshold, detector.preprocessing.crop)
                start += count
        yield [result for result, _, _ in samples]


def scan(inputs: Iterable[str] | str, detector: Detector | None = None, **kwargs) -> Iterator[Result]:
    """Scan inputs and yield one Result per input, in input order (see ``scan_batches`` for the options)."""
    for batch in scan_batches(inputs, detector, **kwargs):
        yield from batch
