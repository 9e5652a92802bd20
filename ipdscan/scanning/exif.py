"""The camera fields of a report row (make, model, software, datetime), read from the EXIF in an image file's
bytes with exifread. Never raises: unreadable EXIF is empty fields."""
from __future__ import annotations

import io
import logging

import exifread

# exifread logs a warning for every file without EXIF, which is most of a scan.
logging.getLogger("exifread").setLevel(logging.CRITICAL)

EXIF_TAGS = {  # field -> exifread keys, the first non-empty one wins
    "make": ("Image Make",),
    "model": ("Image Model",),
    "software": ("Image Software",),
    "datetime": ("EXIF DateTimeOriginal", "Image DateTime"),
}


def exif_fields(data: bytes, embedded: bytes | None = None) -> dict[str, str]:
    """Camera fields from the EXIF in an image file's bytes (or in ``embedded``, the EXIF block a Pillow plugin
    found in them); empty strings where absent or unreadable. Never raises."""
    source = io.BytesIO(embedded.removeprefix(b"Exif\x00\x00")) if embedded else _exif_source(data)
    try:
        # details=False skips MakerNotes, the slow part. (The thumbnail is still extracted, as exifread < 3.1
        # has no switch for it; it is a slice of bytes already in memory.)
        tags = exifread.process_file(source, details=False)
    except Exception:  # malformed EXIF can make exifread raise almost anything
        tags = {}
    return {field: _first_text(tags, keys) for field, keys in EXIF_TAGS.items()}


def _exif_source(data: bytes) -> io.BytesIO:
    """What exifread should parse: the file itself, but a WebP's EXIF chunk on its own.

    exifread expects that chunk to start with "Exif\\0\\0", as JPEG's APP1 does; the WebP spec, libwebp and
    Pillow store bare TIFF data there, which exifread reads as TIFF when handed it directly.
    """
    if not (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return io.BytesIO(data)
    position = 12
    while position + 8 <= len(data):
        size = int.from_bytes(data[position + 4:position + 8], "little")
        if data[position:position + 4] == b"EXIF":
            chunk = data[position + 8:position + 8 + size]
            return io.BytesIO(chunk[6:] if chunk.startswith(b"Exif\x00\x00") else chunk)
        position += 8 + size + (size & 1)  # chunks are padded to even sizes
    return io.BytesIO(b"")


def _first_text(tags: dict, keys: tuple[str, ...]) -> str:
    for key in keys:
        text = str(tags.get(key, "")).strip(" \t\r\n\x00")
        if text:
            return text
    return ""
