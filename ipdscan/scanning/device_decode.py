"""The device decode stage: a batch's JPEGs decoded together on the scoring device (nvjpeg on CUDA).

Decoding with Pillow costs a CPU core ~3 ms per 640x480 JPEG (~100 ms per 12 MP photo), so with GPU decoding
the workers only read files and parse headers (``decode.read_jpeg_header``), and the scoring process hands
each batch's compressed bytes to ``torchvision.io.decode_jpeg(device="cuda")``: one call per batch, hardware
JPEG engines where the GPU has them, and pixels that never cross PCIe uncompressed. EXIF orientation is
applied here, on the device. Measured on an H200 with a 16-core host (benchmarks/RESULTS.md): 4,200 img/s
once running, against 5,200 for Pillow in 16 workers, which needed every core and four times the memory.

A batch that nvjpeg rejects is retried image by image, and an image it cannot decode at all comes back as
None for the caller to decode on the CPU, so one odd file never fails its batch.
"""
from __future__ import annotations

import functools
import io
import warnings

import torch
from PIL import Image

from .decode import JpegHeader

# Pixels decoded in one call: 256 images of 640x480 (79 M) go at once; 12 MP photos go in calls of ~21,
# which bounds the decoder's output buffers at ~0.75 GB whatever the batch size.
PIXELS_PER_CALL = 256_000_000

# EXIF orientation -> the (3, H, W) view that Pillow's ImageOps.exif_transpose produces.
ORIENTATIONS = {
    1: lambda x: x,
    2: lambda x: x.flip(2),  # mirrored left-right
    3: lambda x: x.flip(1, 2),  # rotated 180
    4: lambda x: x.flip(1),  # mirrored top-bottom
    5: lambda x: x.transpose(1, 2),  # transposed (mirrored along the main diagonal)
    6: lambda x: x.transpose(1, 2).flip(2),  # stored rotated 90 counter-clockwise: turn it clockwise
    7: lambda x: x.flip(1, 2).transpose(1, 2),  # transversed (mirrored along the anti-diagonal)
    8: lambda x: x.transpose(1, 2).flip(1),  # stored rotated 90 clockwise: turn it counter-clockwise
}


# torchvision >= 0.29 warns on every call that its decoders are moving to TorchCodec, which is not among this
# project's packages; torchvision's is the decoder that batches nvjpeg here. (A filter, not catch_warnings: the
# decoding runs in a reader thread, and catch_warnings is not thread-safe.)
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision are deprecated",
                        category=DeprecationWarning)


def _decode(encoded: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    # Imported here: torchvision costs a scan ~1 s of start-up, and a scan without GPU decoding never needs it.
    from torchvision.io import ImageReadMode, decode_jpeg
    return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)


def decode_jpegs(encoded: list[torch.Tensor], headers: list[JpegHeader],
                 device: torch.device) -> list[torch.Tensor | None]:
    """Each JPEG's (3, H, W) uint8 RGB pixels on ``device``, oriented as displayed; None where it cannot be decoded.

    ``encoded``: 1-D uint8 CPU tensors of the files' bytes; ``headers``: what ``read_jpeg_header`` found in them.
    """
    pixels: list[torch.Tensor | None] = []
    for start, stop in _calls(headers):
        try:
            pixels += _decode(encoded[start:stop], device)
        except RuntimeError:  # one bad stream fails the whole call: find it by decoding one at a time
            pixels += [_decode_one(e, device) for e in encoded[start:stop]]
    return [None if p is None or _mismatch(p, h) else ORIENTATIONS[h.orientation](p) for p, h in zip(pixels, headers)]


def _decode_one(encoded: torch.Tensor, device: torch.device) -> torch.Tensor | None:
    try:
        return _decode([encoded], device)[0]
    except RuntimeError:
        return None


def _mismatch(pixels: torch.Tensor, header: JpegHeader) -> bool:
    """nvjpeg and Pillow disagree on the image's size: trust neither's pixels; let the CPU decode it."""
    stored = (header.height, header.width) if header.orientation < 5 else (header.width, header.height)
    return tuple(pixels.shape) != (3, *stored)


def _calls(headers: list[JpegHeader]) -> list[tuple[int, int]]:
    """[start, stop) ranges of consecutive images whose pixels fit one call's budget (at least one image each)."""
    calls, start, budget = [], 0, 0
    for index, header in enumerate(headers):
        size = header.width * header.height
        if index > start and budget + size > PIXELS_PER_CALL:
            calls.append((start, index))
            start, budget = index, 0
        budget += size
    if start < len(headers):
        calls.append((start, len(headers)))
    return calls


@functools.cache
def device_decodes_jpeg(device: torch.device) -> bool:
    """Whether ``decode_jpeg`` works on ``device`` here (torchvision built with nvjpeg, for CUDA)."""
    probe = io.BytesIO()
    Image.new("RGB", (16, 8), (90, 120, 200)).save(probe, "JPEG")
    try:
        return _decode([torch.frombuffer(bytearray(probe.getvalue()), dtype=torch.uint8)], device)[0].shape == (3, 8, 16)
    except (RuntimeError, AssertionError):
        return False


__all__ = ["ORIENTATIONS", "PIXELS_PER_CALL", "decode_jpegs", "device_decodes_jpeg"]
