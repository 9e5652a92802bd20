"""items -> DataLoader workers (fetch, decode, crop) -> device (score) -> Result, one per input, in input order.

With ``ScanOptions.decode`` resolved to "device" (the default on CUDA), workers only parse plain JPEGs'
headers, and the scoring process decodes and crops each batch's JPEGs on the GPU (``device_decode``) in a
reader thread that runs one batch ahead of the scoring. Prints nothing: the CLI and the Python API both
consume ``scan()``.

Work is split between DataLoader workers in chunks of ``batch_size`` consecutive items
(chunk k goes to worker k mod W). Every worker walks the same lazy item stream and keeps only
its own chunks, so nothing is ever held whole in memory, and because the DataLoader takes
batches from workers round-robin, results come back in input order.
"""
from __future__ import annotations

import hashlib
import math
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .choices import DECODE_CHOICES
from .decode import MAX_PIXELS, DecodeError, JpegHeader, decode, read_jpeg_header
from .device_decode import decode_jpegs, device_decodes_jpeg
from .evidence import find_evidence
from .fetch import FetchError, FetchOptions, fetch_many
from .preprocess import Preprocessing, crop
from .result import Result
from .runtime import default_workers
from .score import Detector, load_detector
from .sources import Item, iter_items, redact_credentials, shard_filter
from .stdin_spool import StdinSpool
from .tiles import crop_tiles




@dataclass
class ScanOptions:
    batch_size: int = 32
    workers: int | None = None  # None: chosen from the device and the CPU count
    threshold: float | None = None  # None: the detector's own calibrated threshold
    hidden: bool = False
    null: bool = False  # "-" reads names each ended by a NUL byte (find -print0), not lines
    max_pixels: int = MAX_PIXELS  # larger images are decompression_bomb rows
    fetch: FetchOptions = field(default_factory=FetchOptions)
    fetch_concurrency: int = 8  # per worker; URL lists are latency-bound
    crops: int = 1  # >1: also score about this many tiles across the image (crops_max / crops_mean)
    shard: tuple[int, int] | None = None  # (K, N), 1-based
    skip: Callable[[str], bool] | None = None  # e.g. inputs already in a resumed report
    decode: str = "auto"  # where JPEGs are decoded: "workers" (Pillow), "device" (the scoring device), "auto"

    def __post_init__(self):
        if self.decode not in DECODE_CHOICES:
            raise ValueError(f"unknown decode {self.decode!r}: use {', '.join(DECODE_CHOICES)}")

    def decodes_on_device(self, device: torch.device) -> bool:
        """Whether plain JPEGs go to the scoring device to be decoded ("auto": on CUDA, where nvjpeg works)."""
        if self.decode == "auto":
            return device.type == "cuda" and device_decodes_jpeg(device)
        return self.decode == "device"

    def resolved_workers(self, device: torch.device, device_decode: bool = False) -> int:
        return default_workers(self.workers, device, device_decode)


def selected_items(inputs: Iterable[str], options: ScanOptions, stdin=None) -> Iterator[Item]:
    """The inputs this scan covers, after sharding and resume filtering, in order."""
    items = iter_items(inputs, hidden=options.hidden, stdin=stdin, null=options.null)
    if options.shard:
        items = shard_filter(items, options.shard)
    if options.skip:
        items = (item for item in items if not options.skip(item.shown))  # as the report wrote it
    return items


@dataclass
class Sample:
    """One input between the stages: its report row, and its pixels as crops or as JPEG bytes still to decode."""

    result: Result
    crops: torch.Tensor | None = None  # (K, 3, crop, crop) uint8: the centre crop, then any tiles
    offsets: list[tuple[int, int]] = field(default_factory=list)  # the tiles' (top, left)
    jpeg: JpegHeader | None = None  # set when the scoring device decodes this file (ScanOptions.decode)
    data: bytes | None = None  # that file's bytes, until the batch packs them
    crop_count: int = 0  # rows of Batch.crops that are this sample's (0: an error, or device-decoded)
    span: tuple[int, int] = (0, 0)  # this sample's bytes in Batch.encoded


@dataclass
class Batch:
    """Samples as they cross from a worker to the scoring process: tensors packed so each crosses once."""

    samples: list[Sample]
    crops: torch.Tensor  # (N, 3, crop, crop) uint8: the CPU-decoded samples' crops, in order
    encoded: torch.Tensor  # (bytes,) uint8: the device-decoded samples' files, back to back

    def pin_memory(self) -> "Batch":
        """Called by the DataLoader's pinning thread: pinned crops copy to the GPU asynchronously."""
        self.crops = self.crops.pin_memory()
        return self


def prepare(item: Item, data: bytes | FetchError, preprocessing: Preprocessing, max_pixels: int, crops: int = 1,
            device_decode: bool = False) -> Sample:
    """Bytes -> a Sample: decoded and cropped here, or (``device_decode``, plain JPEGs) left for the device.

    The row names the input as ``Item.shown`` does: a URL's credentials never reach a report.
    """
    if isinstance(data, FetchError):
        return Sample(Result.failed(item.shown, data.code, redact_credentials(data.message)))
    known = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    header = read_jpeg_header(data, max_pixels=max_pixels) if device_decode else None
    if header is None:
        return decode_on_cpu(item.shown, data, known, preprocessing, max_pixels, crops)
    result = unscored_row(item.shown, data, known, "JPEG", header.width, header.height, 1, header.exif)
    return Sample(result, jpeg=header, data=data)


def decode_on_cpu(input: str, data: bytes, known: dict, preprocessing: Preprocessing, max_pixels: int,
                  crops: int) -> Sample:
    try:
        decoded = decode(data, max_pixels=max_pixels)
    except DecodeError as exc:
        return Sample(Result.failed(input, exc.code, exc.message, **known))
    except Exception as exc:  # a decoder bug must cost one row, not the scan
        return Sample(Result.failed(input, "decode_error", f"{type(exc).__name__}: {exc}", **known))
    result = unscored_row(input, data, known, decoded.format, decoded.width, decoded.height, decoded.frames,
                          decoded.exif)
    return Sample(result, *crops_of(decoded.pixels, preprocessing, crops))


def unscored_row(input: str, data: bytes, known: dict, format: str, width: int, height: int, frames: int,
                 exif: dict[str, str]) -> Result:
    """A readable file's report row before scoring: what its header and metadata say."""
    evidence = find_evidence(data)
    return Result(input=input, format=format, width=width, height=height, frames=frames,
                  exif_make=exif.get("make", ""), exif_model=exif.get("model", ""),
                  exif_software=exif.get("software", ""), exif_datetime=exif.get("datetime", ""),
                  evidence=evidence.codes, evidence_detail=evidence.detail, **known)


def crops_of(pixels: torch.Tensor, preprocessing: Preprocessing, crops: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """(3, H, W) -> ((K, 3, crop, crop): the centre crop, then ``crops`` > 1 tiles; the tiles' offsets)."""
    centre = crop(pixels, preprocessing)[None]
    if crops <= 1:
        return centre, []
    tiles, offsets = crop_tiles(pixels, crops, preprocessing)
    return torch.cat([centre, tiles]), offsets


class ScanDataset(IterableDataset):
    """Yields Samples for this worker's chunks of the item stream."""

    def __init__(self, inputs: list[str], options: ScanOptions, preprocessing: Preprocessing, device_decode: bool,
                 stdin=None):
        self.inputs, self.options, self.preprocessing, self.stdin = inputs, options, preprocessing, stdin
        self.device_decode = device_decode

    def _my_items(self) -> Iterator[Item]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        chunk = self.options.batch_size
        for position, item in enumerate(selected_items(self.inputs, self.options, self.stdin)):
            if (position // chunk) % workers == worker:
                yield item

    def __iter__(self):
        options = self.options
        fetched = fetch_many(self._my_items(), options.fetch, concurrency=options.fetch_concurrency)
        for item, data in fetched:
            yield prepare(item, data, self.preprocessing, options.max_pixels, options.crops, self.device_decode)


def collate(samples: list[Sample]) -> Batch:
    """Runs in the worker: one crops tensor and one bytes tensor per batch, so each crosses processes once."""
    crops, files, position = [], [], 0
    for sample in samples:
        if sample.crops is not None:
            crops.append(sample.crops)
            sample.crop_count, sample.crops = len(sample.crops), None
        if sample.data is not None:
            files.append(np.frombuffer(sample.data, np.uint8))
            sample.span, sample.data = (position, position + len(sample.data)), None
            position = sample.span[1]
    return Batch(samples=samples,
                 crops=torch.cat(crops) if crops else torch.empty(0, 3, 0, 0, dtype=torch.uint8),
                 encoded=torch.from_numpy(np.concatenate(files)) if files else torch.empty(0, dtype=torch.uint8))


def crops_on_device(batch: Batch, device: torch.device, options: ScanOptions, preprocessing: Preprocessing) -> torch.Tensor:
    """All the batch's crops on ``device``, in sample order; the device-decoded JPEGs are decoded and cropped here.

    A JPEG the device cannot decode is decoded on the CPU instead, and fails its own row if that fails too.
    """
    pending = [sample for sample in batch.samples if sample.jpeg is not None]
    files = [batch.encoded[sample.span[0]:sample.span[1]] for sample in pending]
    decoded = iter(zip(files, decode_jpegs(files, [sample.jpeg for sample in pending], device)))
    parts, start = [], 0
    for sample in batch.samples:
        if sample.crop_count:  # decoded by a worker
            parts.append(batch.crops[start:start + sample.crop_count].to(device, non_blocking=True))
            start += sample.crop_count
        elif sample.jpeg is not None:
            file, pixels = next(decoded)
            if pixels is None:
                known = {"sha256": sample.result.sha256, "bytes": sample.result.bytes}
                fallback = decode_on_cpu(sample.result.input, file.numpy().tobytes(), known, preprocessing,
                                         options.max_pixels, options.crops)
                sample.result, crops, sample.offsets = fallback.result, fallback.crops, fallback.offsets
            else:
                crops, sample.offsets = crops_of(pixels, preprocessing, options.crops)
            if crops is not None:
                parts.append(crops.to(device))
                sample.crop_count = len(crops)
    return torch.cat(parts) if parts else torch.empty(0, 3, 0, 0, dtype=torch.uint8)


def attach_scores(sample: Sample, scores: list[float], threshold: float, crop_size: int) -> Result:
    """Fill in the score (centre crop) and, with tiles, their max, mean and the best tile's box; a model_error
    if any of them is not a number (NaN >= threshold is False: it would pass as "real", and --fail-on never trip)."""
    result, offsets = sample.result, sample.offsets
    if not all(map(math.isfinite, scores)):
        result.status, result.error_code = "error", "model_error"
        result.error = "the model's output is not a number (NaN or infinite): the weights or the device are faulty"
        return result
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


def scan_batches(inputs: Iterable[str] | str, detector: Detector | None = None, *, options: ScanOptions | None = None,
                 weights=None, device: str = "auto", stdin=None) -> Iterator[list[Result]]:
    """Scan inputs (paths, directories, URL lists, URLs, '-' for stdin) and yield scored Results batch by batch.

    Every input yields exactly one Result; failures are Results with status "error".
    """
    options = options or ScanOptions()
    detector = detector or load_detector(weights, device)
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    target, preprocessing = detector.device, detector.preprocessing
    on_device = options.decodes_on_device(target)
    workers = options.resolved_workers(target, on_device)
    # Worker processes cannot read this process's stdin: they read a copy that this process makes as lines arrive.
    spool = StdinSpool(stdin, options.null) if "-" in inputs and workers > 0 else None
    dataset = ScanDataset(inputs, options, preprocessing, on_device, spool.lines if spool else stdin)
    loader = DataLoader(dataset, batch_size=options.batch_size, num_workers=workers, collate_fn=collate,
                        pin_memory=target.type == "cuda", persistent_workers=False,
                        prefetch_factor=4 if workers else None)

    def with_crops(batch: Batch) -> tuple[Batch, torch.Tensor]:
        return batch, crops_on_device(batch, target, options, preprocessing) if on_device else batch.crops

    threshold = detector.threshold if options.threshold is None else options.threshold
    batches = map(with_crops, loader)
    try:
        for batch, crops in in_background(batches) if target.type == "cuda" else batches:
            scores, start = detector.score(crops).tolist(), 0
            for sample in batch.samples:
                if sample.crop_count:
                    attach_scores(sample, scores[start:start + sample.crop_count], threshold, preprocessing.crop)
                    start += sample.crop_count
            yield [sample.result for sample in batch.samples]
    finally:
        if spool:
            spool.close()


def scan(inputs: Iterable[str] | str, detector: Detector | None = None, **kwargs) -> Iterator[Result]:
    """Scan inputs and yield one Result per input, in input order (see ``scan_batches`` for the options)."""
    for batch in scan_batches(inputs, detector, **kwargs):
        yield from batch
