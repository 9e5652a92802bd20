"""The CPU stage, run in DataLoader workers: one input's bytes -> a ``Prepared`` sample (``prepare``), decoded and
cropped here, or, for a plain JPEG the scoring device will decode, only its header read.

Work is split between workers in chunks of ``batch_size`` consecutive items (chunk k goes to worker k mod W).
Every worker walks the same lazy item stream and keeps only its own chunks, so nothing is ever held whole in
memory, and because the DataLoader takes batches from workers round-robin, they come back in input order.
``collate_prepared`` packs a batch's tensors so that each crosses processes once.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .decode import DecodeError, JpegHeader, decode, read_jpeg_header
from .evidence import find_evidence
from .fetch import fetch_many
from .fetch_options import FetchError
from .options import ScanOptions
from .preprocess import Preprocessing
from .result import Result
from .item import Item
from .sources import selected_items
from .tiles import crops_of
from .urls import redact_credentials


@dataclass(frozen=True)
class Prepared:
    """One input between the stages: its row's columns known before scoring and its pixels, as crops or as JPEG
    bytes still to decode; or, for an input that already failed, its finished error row."""

    input: str  # as the report names it: a URL without its credentials
    columns: dict = field(default_factory=dict)  # Result fields known before scoring: sha256, size, EXIF, evidence
    failed: Result | None = None  # the finished error row: nothing to score
    crops: torch.Tensor | None = None  # (K, 3, crop, crop) uint8: the centre crop, then any tiles
    offsets: list[tuple[int, int]] = field(default_factory=list)  # the tiles' (top, left)
    jpeg: JpegHeader | None = None  # set when the scoring device decodes this file (ScanOptions.decode)
    data: bytes | None = None  # that file's bytes, until the batch packs them
    crop_count: int = 0  # rows of ScanBatch.crops that are this sample's (0: failed, or still to decode)
    span: tuple[int, int] = (0, 0)  # this sample's bytes in ScanBatch.encoded


@dataclass(frozen=True)
class ScanBatch:
    """Prepared samples as they cross from a worker to the scoring process: tensors packed so each crosses once."""

    samples: list[Prepared]
    crops: torch.Tensor  # (N, 3, crop, crop) uint8: the samples' crops, in order
    encoded: torch.Tensor  # (bytes,) uint8: the device-decoded samples' files, back to back

    def pin_memory(self) -> "ScanBatch":
        """Called by the DataLoader's pinning thread: pinned crops copy to the GPU asynchronously."""
        return replace(self, crops=self.crops.pin_memory())


def prepare(item: Item, data: bytes | FetchError, preprocessing: Preprocessing, max_pixels: int, tiles: int = 0,
            device_decode: bool = False) -> Prepared:
    """An item's fetched bytes (or why they could not be fetched) -> a Prepared sample: decoded and cropped (the
    centre crop and about ``tiles`` tiles) here, or, with ``device_decode``, a plain JPEG left for the device.

    The row names the input as ``Item.redacted`` does: a URL's credentials never reach a report.
    """
    if isinstance(data, FetchError):
        return Prepared(item.redacted, failed=Result.failed(item.redacted, data.code, redact_credentials(data.message)))
    known = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    header = read_jpeg_header(data, max_pixels=max_pixels) if device_decode else None
    if header is None:
        return decode_on_cpu(item.redacted, data, known, preprocessing, max_pixels, tiles)
    columns = described_columns(data, "JPEG", header.width, header.height, 1, header.exif)
    return Prepared(item.redacted, {**known, **columns}, jpeg=header, data=data)


def decode_on_cpu(input: str, data: bytes, known: dict, preprocessing: Preprocessing, max_pixels: int,
                  tiles: int) -> Prepared:
    """Decode and crop ``data`` here; ``known``: the columns already known (sha256, bytes)."""
    try:
        decoded = decode(data, max_pixels=max_pixels)
    except DecodeError as exc:
        return Prepared(input, failed=Result.failed(input, exc.code, exc.message, **known))
    except Exception as exc:  # a decoder bug must cost one row, not the scan
        return Prepared(input, failed=Result.failed(input, "decode_error", f"{type(exc).__name__}: {exc}", **known))
    columns = described_columns(data, decoded.format, decoded.width, decoded.height, decoded.frames, decoded.exif)
    crops, offsets = crops_of(decoded.pixels, preprocessing, tiles)
    return Prepared(input, {**known, **columns}, crops=crops, offsets=offsets)


def described_columns(data: bytes, format: str, width: int, height: int, frames: int, exif: dict[str, str]) -> dict:
    """A readable file's columns before scoring: what its header and metadata say."""
    evidence = find_evidence(data)
    return {"format": format, "width": width, "height": height, "frames": frames,
            "exif_make": exif.get("make", ""), "exif_model": exif.get("model", ""),
            "exif_software": exif.get("software", ""), "exif_datetime": exif.get("datetime", ""),
            "evidence": evidence.codes, "evidence_detail": evidence.detail}


class ScanDataset(IterableDataset):
    """Yields Prepared samples for this worker's chunks of the item stream."""

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

    def __iter__(self) -> Iterator[Prepared]:
        return prepare_items(self._my_items(), self.options, self.preprocessing, self.device_decode)


def prepare_items(items: Iterable[Item], options: ScanOptions, preprocessing: Preprocessing,
                  device_decode: bool) -> Iterator[Prepared]:
    """Items -> their Prepared samples, in order: fetched (``options.fetch_concurrency`` at a time), then
    ``prepare``d. What a DataLoader worker runs, and a Ray task too (``ray_workers``)."""
    fetched = fetch_many(items, options.fetch, concurrency=options.fetch_concurrency)
    for item, data in fetched:
        yield prepare(item, data, preprocessing, options.max_pixels, options.tiles, device_decode)


def collate_prepared(samples: list[Prepared]) -> ScanBatch:
    """Runs in the worker: one crops tensor and one bytes tensor per batch, so each crosses processes once."""
    packed, crops, files, position = [], [], [], 0
    for sample in samples:
        if sample.crops is not None:
            crops.append(sample.crops)
            sample = replace(sample, crops=None, crop_count=len(sample.crops))
        if sample.data is not None:
            files.append(np.frombuffer(sample.data, np.uint8))
            sample = replace(sample, data=None, span=(position, position + len(sample.data)))
            position = sample.span[1]
        packed.append(sample)
    return ScanBatch(samples=packed,
                     crops=torch.cat(crops) if crops else torch.empty(0, 3, 0, 0, dtype=torch.uint8),
                     encoded=torch.from_numpy(np.concatenate(files)) if files else torch.empty(0, dtype=torch.uint8))
