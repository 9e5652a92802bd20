"""Bytes -> RGB uint8 pixels and metadata, for the formats a scan accepts.

Every failure is a ``DecodeError`` whose ``code`` is one of ``formats.ERROR_CODES``; nothing here prints.
The pixel limit is checked from the header, before any pixels are decoded, and never touches
Pillow's global settings, so decoding is safe in any process or thread.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .exif import EXIF_TAGS, exif_fields
from .formats import signature_format
from .image_plugins import AVIF, BMFF_FORMATS

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO", "HEIF", *AVIF)
# Pillow's plugins to try; MPO opens through JPEG's
OPENED_AS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", *AVIF)
EXIF_FORMATS = ("JPEG", "MPO", "TIFF", "PNG", "WEBP", "HEIF", *AVIF)  # GIF and BMP cannot carry EXIF
# The PNG chunks that make up the pixels; every other chunk only describes them.
PNG_PIXEL_CHUNKS = (b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND", b"acTL", b"fcTL", b"fdAT")

ORIENTATION_TAG = 0x0112
# The most pixels decoded by default: 50 megapixels, over any phone's default photo and most cameras'. Pillow
# holds 4 bytes a pixel and the result 3 (converted a strip at a time, float and 16-bit images too), so one image
# costs at most ~350 MB in each worker of a scan: benchmarks/bench_hostile.py measures it.
MAX_PIXELS = 50_000_000
STRIP_BYTES = 1 << 22  # Pillow pixels converted at a time

@dataclass
class Decoded:
    pixels: np.ndarray  # (3, H, W) uint8 RGB, contiguous: the first frame, EXIF orientation applied
    format: str  # Pillow's name: JPEG, PNG, WEBP, GIF, BMP, TIFF, MPO
    width: int  # as displayed, after orientation
    height: int
    frames: int  # 1 for stills
    exif: dict[str, str]  # make, model, software, datetime; "" when absent


@dataclass
class JpegHeader:
    """What the scan needs of a JPEG that the scoring GPU will decode: everything but the pixels."""

    width: int  # as displayed, after orientation
    height: int
    orientation: int  # EXIF orientation 1..8 (1: as stored), applied on the device after decoding
    exif: dict[str, str]


class DecodeError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def decode(data: bytes, *, max_pixels: int = MAX_PIXELS) -> Decoded:
    """Decode the first frame of an image file's bytes to RGB; refuse more than ``max_pixels`` before decoding.

    No metadata problem may keep pixels from being scored: a PNG or JPEG that Pillow cannot decode is decoded
    again without its metadata (``pixels_only``) before it is a decode_error. Pillow refuses, for one, a PNG
    text chunk that inflates past 1 MB, which anyone can add to any image. EXIF is read from the file as it is.
    """
    if not data:
        raise DecodeError("empty_file", "the file is empty")
    try:
        decoded, embedded = _decode(data, max_pixels)
    except DecodeError as exc:
        bare = pixels_only(data) if exc.code == "decode_error" else None
        if bare is None:
            raise
        try:
            decoded, embedded = _decode(bare, max_pixels)
        except DecodeError:
            raise exc from None  # broken pixels: the file's own error says so
    decoded.exif = exif_fields(data, embedded) if decoded.format in EXIF_FORMATS else dict.fromkeys(EXIF_TAGS, "")
    return decoded


def pixels_only(data: bytes) -> bytes | None:
    """A PNG or JPEG without the records that only describe it (text, EXIF, XMP, ICC, comments), or None when
    ``data`` is neither or has none: what is left holds the pixels. A PNG keeps its header, palette,
    transparency, image data and APNG frames; a JPEG its JFIF APP0 and every non-APP marker."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        kept, position = [data[:8]], 8
        while position + 12 <= len(data):
            end = position + 12 + int.from_bytes(data[position:position + 4], "big")
            if data[position + 4:position + 8] in PNG_PIXEL_CHUNKS:
                kept.append(data[position:end])
            position = end
        kept.append(data[position:])  # whatever trails (a truncated chunk) stays for the decoder to judge
    elif data.startswith(b"\xff\xd8"):
        kept, position = [data[:2]], 2
        while position + 4 <= len(data) and data[position] == 0xFF and data[position + 1] not in (0xDA, 0xD9):
            marker = data[position + 1]
            if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD7:  # fill bytes, markers without a length
                kept.append(data[position:position + (1 if marker == 0xFF else 2)])
                position += 1 if marker == 0xFF else 2
                continue
            end = position + 2 + int.from_bytes(data[position + 2:position + 4], "big")
            if not (0xE1 <= marker <= 0xEF or marker == 0xFE):  # APP1..APP15, COM: metadata
                kept.append(data[position:end])
            position = end
        kept.append(data[position:])  # the scan and what follows
    else:
        return None
    bare = b"".join(kept)
    return bare if len(bare) < len(data) else None


def _decode(data: bytes, max_pixels: int) -> tuple[Decoded, bytes | None]:
    """decode()'s pixels, format, size and frames (its exif left for decode() to fill in), and for HEIF and AVIF
    the EXIF block the plugin found in the file's items, which exifread cannot walk to in a HEIC."""
    with warnings.catch_warnings():
        # Pillow warns about corrupt EXIF, palettes, truncated TIFF tags and sizes over its own advisory
        # limit; here each image's problems become its DecodeError, and the pixel limit is max_pixels.
        # catch_warnings swaps the process-wide filter list: a thread racing another thread's catch_warnings
        # could at worst keep these ignore filters, which silences warnings and changes no result.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)
        with _open(data) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise DecodeError("decompression_bomb", f"{width}x{height} is {width * height:,} pixels, "
                                                        f"over the limit of {max_pixels:,}")
            try:
                frames = getattr(im, "n_frames", 1)  # walks the frames' headers: fails on truncation too
                im.load()
            except Image.DecompressionBombError as exc:  # a later frame or tile is bigger than the header said
                raise DecodeError("decompression_bomb", str(exc)) from exc
            except Exception as exc:
                raise DecodeError("decode_error", f"corrupt or truncated {im.format}: {exc}") from exc
            _apply_orientation(im)
            try:
                pixels = _rgb_channels_first(im)
            except Exception as exc:
                raise DecodeError("decode_error", f"cannot convert {im.mode} pixels to RGB: {exc}") from exc
            image_format = im.format
            embedded = im.info.get("exif") if image_format in BMFF_FORMATS else None
    return Decoded(pixels=pixels, format=image_format, width=pixels.shape[2],
                   height=pixels.shape[1], frames=frames, exif={}), embedded


def read_jpeg_header(data: bytes, *, max_pixels: int = MAX_PIXELS) -> JpegHeader | None:
    """The header of a plain 8-bit RGB or grayscale JPEG, or None for anything ``decode`` should handle instead.

    None covers everything a GPU decoder could get wrong or that needs ``decode``'s error messages: not a JPEG,
    multi-picture (MPO), CMYK/YCCK, over ``max_pixels``, an unreadable header, or bytes that do not end with
    the end-of-image marker (a truncated file, which libjpeg reports and nvjpeg may silently fill in).
    """
    if not data.startswith(b"\xff\xd8\xff") or not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=("JPEG",)) as im:
                width, height = im.size
                if im.format != "JPEG" or im.mode not in ("RGB", "L") or width * height > max_pixels:
                    return None
                orientation = im.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # whatever Pillow cannot read, decode() explains
        return None
    if orientation not in range(1, 9):
        orientation = 1  # as _apply_orientation does: unusable EXIF leaves the pixels as stored
    if orientation >= 5:  # the transposing orientations swap the displayed sides
        width, height = height, width
    return JpegHeader(width=width, height=height, orientation=orientation, exif=exif_fields(data))


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=OPENED_AS)
    except Image.DecompressionBombError as exc:  # Pillow's own hard ceiling, twice Image.MAX_IMAGE_PIXELS
        raise DecodeError("decompression_bomb", str(exc)) from exc
    except UnidentifiedImageError as exc:
        claimed = signature_format(data)
        if claimed:
            raise DecodeError("decode_error", f"corrupt {claimed}: its header cannot be read") from exc
        raise DecodeError("unsupported_format",
                          f"not an image in a supported format ({', '.join(SUPPORTED_FORMATS)})") from exc
    except Exception as exc:
        raise DecodeError("decode_error", f"corrupt image header: {exc}") from exc


def _apply_orientation(im: Image.Image) -> None:
    try:
        ImageOps.exif_transpose(im, in_place=True)
    except Exception:
        # Corrupt EXIF: the pixels are still good, so keep them as stored. The transpose itself happens
        # before Pillow rewrites the EXIF, so a failure here never leaves a half-rotated image.
        pass


def _rgb_channels_first(im: Image.Image) -> np.ndarray:
    """(3, H, W) contiguous uint8 RGB from a loaded image in any mode Pillow decodes to."""
    if im.mode in ("I", "F") or im.mode.startswith("I;"):
        return _high_depth_to_rgb(im)
    # Alpha (RGBA, LA, PA, palette transparency) is dropped and the colour underneath kept as stored: a
    # generator's pixels are what we score, not what a viewer would composite them onto. CMYK JPEGs' Adobe
    # inversion is Pillow's job. Converted and copied a strip of rows at a time: whole-image convert(),
    # tobytes() and transpose copies cost 10 bytes a pixel on top of Pillow's own 4; this costs the 3 of the result.
    width, height = im.size
    pixels = np.empty((3, height, width), np.uint8)
    rows = max(1, STRIP_BYTES // (4 * width))
    for top in range(0, height, rows):
        strip = im.crop((0, top, width, min(height, top + rows)))
        rgb = strip if strip.mode == "RGB" else strip.convert("RGB")
        pixels[:, top:top + rgb.height] = np.asarray(rgb).transpose(2, 0, 1)
    return pixels


def _high_depth_to_rgb(im: Image.Image) -> np.ndarray:
    """(3, H, W) uint8 from 16-bit, 32-bit int or float gray, scaled (Image.convert would clip 16-bit values to 255).

    Read a strip of rows at a time, twice (the range, then the pixels): whole-image arrays and their float copies
    cost 24 bytes a pixel on top of Pillow's 4 (1.3 GB for a 49 MP float TIFF); this costs the 3 of the result.
    """
    width, height = im.size
    rows = max(1, STRIP_BYTES // (4 * width))

    def strips():
        for top in range(0, height, rows):
            strip = np.asarray(im.crop((0, top, width, min(height, top + rows))))
            yield top, strip if strip.dtype.kind in "ui" else _finite(strip)

    low = high = None
    for _, strip in strips():
        low = strip.min() if low is None else min(low, strip.min())
        high = strip.max() if high is None else max(high, strip.max())
    pixels = np.empty((3, height, width), np.uint8)
    sixteen_bit = im.mode != "F" and 0 <= low and high <= 65535
    low, high = float(np.float32(low)), float(np.float32(high))  # as the float32 pixels below hold them
    if not sixteen_bit and 0 <= low and high <= 1:  # float images conventionally hold 0..1
        low, high = 0.0, 1.0
    scale = 255 / (high - low) if high > low else 0.0  # otherwise: whatever range it has, stretched
    for top, strip in strips():
        if sixteen_bit:  # 16-bit samples (Pillow's I;16 modes, and mode I for 16-bit files): x/257 rounded
            gray = ((strip.astype(np.uint32) + 128) // 257).astype(np.uint8)
        else:
            gray = np.rint((strip.astype(np.float32) - low) * scale).astype(np.uint8)
        pixels[:, top:top + len(gray)] = gray
    return pixels


def _finite(a: np.ndarray) -> np.ndarray:
    return np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
