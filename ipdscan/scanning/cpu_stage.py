"""The CPU stage, run in worker processes: a batch of items -> a ``ScanBatch`` (``prepare_batch``, what every
executor runs): each item fetched, and its bytes -> a ``Prepared`` sample (``prepare``), decoded and cropped here,
or, for a plain JPEG the scoring device will decode, only its header read.

Numpy and Pillow only, no torch: the base install scans without it. ``collate_prepared`` packs a batch's
arrays so that each crosses processes once.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from ..evidence import find_evidence
from ..model.preprocess import Preprocessing
from .decode import DecodeError, JpegHeader, decode, read_jpeg_header
from .fetch import fetch_many
from .fetch_options import FetchError
from .item import Item
from .result import Result
from .tiles import crops_of
from .urls import redact_credentials

if TYPE_CHECKING:
    from .plan import ScanPlan


@dataclass(frozen=True)
class Prepared:
    """One input between the stages: its row's columns known before scoring and its pixels, as crops or as JPEG
    bytes still to decode; or, for an input that already failed, its finished error row."""

    input: str  # as the report names it: a URL without its credentials
    columns: dict = field(default_factory=dict)  # Result fields known before scoring: sha256, size, EXIF, evidence
    failed: Result | None = None  # the finished error row: nothing to score
    crops: np.ndarray | None = None  # (K, 3, crop, crop) uint8: the centre crop, then any tiles
    offsets: list[tuple[int, int]] = field(default_factory=list)  # the tiles' (top, left)
    jpeg: JpegHeader | None = None  # set when the scoring device decodes this file (ScanPlan.decodes_on_device)
    data: bytes | None = None  # that file's bytes, until the batch packs them
    crop_count: int = 0  # rows of ScanBatch.crops that are this sample's (0: failed, or still to decode)
    span: tuple[int, int] = (0, 0)  # this sample's bytes in ScanBatch.encoded


@dataclass(frozen=True)
class ScanBatch:
    """Prepared samples as they cross from a worker to the scoring process: arrays packed so each crosses once."""

    samples: list[Prepared]
    crops: np.ndarray  # (N, 3, crop, crop) uint8: the samples' crops, in order (a tensor on the device once
    # device_stage.decode_on_device has run)
    encoded: np.ndarray  # (bytes,) uint8: the device-decoded samples' files, back to back

    @property
    def undecoded(self) -> bool:
        """Whether JPEGs wait for the scoring device to decode them."""
        return any(sample.jpeg is not None for sample in self.samples)


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


def prepare_batch(items: list[Item], plan: ScanPlan) -> ScanBatch:
    """A batch of items -> its ScanBatch: fetched (``fetch_concurrency`` at a time), each ``prepare``d, collated.
    What every executor's workers run: the local ones (``pipeline``) and Ray's tasks (``ray_workers``)."""
    options = plan.options
    fetched = fetch_many(items, options.fetch, concurrency=options.fetch_concurrency)
    return collate_prepared([prepare(item, data, plan.preprocessing, options.max_pixels, options.tiles,
                                     plan.decodes_on_device) for item, data in fetched])


def collate_prepared(samples: list[Prepared]) -> ScanBatch:
    """Runs in the worker: one crops array and one bytes array per batch, so each crosses processes once."""
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
                     crops=np.concatenate(crops) if crops else np.empty((0, 3, 0, 0), np.uint8),
                     encoded=np.concatenate(files) if files else np.empty(0, np.uint8))
