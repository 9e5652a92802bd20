"""Containers: walk the records of a JPEG, PNG, WebP, TIFF or HEIF/AVIF file that can hold metadata, copying
only those (EXIF, XMP, text chunks, C2PA manifest stores) into a ``Collector``."""
from __future__ import annotations

import io
import json
import zlib

from PIL import Image

from ..scanning.formats import AVIF_BRANDS
from ..scanning.image_plugins import BMFF_FORMATS
from .vocabulary import MAX_ERRORS, MAX_FIELD, MAX_RECORDS, Evidence, clip

# PNG text keywords worth reading; other chunks are skipped without being inflated.
GENERATOR_KEYS = frozenset({
    "parameters", "prompt", "workflow", "negative_prompt", "use_stable_diffusion_model", "Software", "Comment",
    "Source", "invokeai_metadata", "invokeai_graph", "sd-metadata", "Dream", "fooocus_scheme",
})
PNG_XMP_KEY = "XML:com.adobe.xmp"
JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
# The usertype of the ISO BMFF 'uuid' box that holds a C2PA manifest store in HEIF and AVIF files (C2PA 2.x, A.5).
C2PA_BMFF_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
BMFF_CONTAINERS = ("heif", "avif")


class Collector:
    """The raw metadata a container walk finds, and the codes and detail read from it."""

    def __init__(self):
        self.texts: dict[str, str] = {}  # PNG text keyword -> text (first MAX_FIELD characters)
        self.exif: list = []  # TIFF-structured EXIF bytes, or Pillow Exif objects
        self.xmp: list[bytes] = []
        self.c2pa: list[tuple[str, bytes]] = []  # (where, JUMBF manifest store)
        self.codes: set[str] = set()
        self.detail: dict = {}

    def add(self, code: str, section: str, **info):
        self.codes.add(code)
        self.detail.setdefault(section, {}).update(info)

    def c2pa_store(self, where: str, store: bytes):
        """Keep ``store`` if it is a C2PA manifest store (other JUMBF or unrelated bytes can sit in the same places)."""
        if _is_c2pa_store(store):
            self.c2pa.append((where, store))

    def error(self, source: str, message: str):
        errors = self.detail.setdefault("errors", [])
        if len(errors) < MAX_ERRORS:
            errors.append(f"{source}: {clip(message)}")

    def truncated(self, where: str):
        """Note that only the first MAX_FIELD bytes of the field ``where`` (e.g. "png:workflow") were read."""
        notes = self.detail.setdefault("truncated", [])
        if len(notes) < MAX_ERRORS:
            notes.append(f"{clip(where, 200)}: over {MAX_FIELD:,} bytes, only the first {MAX_FIELD:,} read")

    def evidence(self) -> Evidence:
        # Through JSON once: what a report holds, and what merge reads back, is then the detail itself.
        return Evidence(codes=sorted(self.codes), detail=json.loads(json.dumps(self.detail, sort_keys=True)))


# Containers: walk the records that can hold metadata, copying only those.

def walk_container(data: bytes, found: Collector) -> str:
    if data.startswith(b"\xff\xd8"):
        _walk_jpeg(data, found)
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        _walk_png(data, found)
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        _walk_webp(data, found)
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        found.exif.append(data)  # a TIFF's first IFD is the EXIF IFD0, with its XMP in tag 700
        return "tiff"
    if data[4:8] == b"ftyp":
        _walk_bmff(data, found)
        return "avif" if data[8:12] in AVIF_BRANDS else "heif"
    return ""


def _walk_jpeg(data: bytes, found: Collector):
    jumbf: dict[bytes, list[tuple[int, bytes]]] = {}  # box instance -> [(sequence number, payload)]
    position = 2
    for _ in range(MAX_RECORDS):
        if position + 4 > len(data) or data[position] != 0xFF:
            break
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            position += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan or end of image: metadata segments come before
            break
        length = int.from_bytes(data[position + 2:position + 4], "big")
        if length < 2:
            break
        body = data[position + 4:position + 2 + length]
        if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
            found.exif.append(body[6:])
        elif marker == 0xE1 and body.startswith(JPEG_XMP_HEADER):
            found.xmp.append(body[len(JPEG_XMP_HEADER):])
        elif marker == 0xEB and body[:2] == b"JP" and len(body) > 16:
            # APP11 JPEG-XT box: "JP", box instance (2), sequence number (4), then the JUMBF box; a box larger
            # than one segment continues in later ones, each repeating the box's 8-byte LBox/TBox header.
            jumbf.setdefault(body[2:4], []).append((int.from_bytes(body[4:8], "big"), body[8:]))
        position += 2 + length
    for parts in jumbf.values():
        parts.sort(key=lambda part: part[0])
        store = parts[0][1] + b"".join(payload[8:] for _, payload in parts[1:])
        found.c2pa_store("jpeg:app11", store)


def _walk_png(data: bytes, found: Collector):
    position = 8
    for _ in range(MAX_RECORDS):
        if position + 8 > len(data):
            break
        length = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        start, end = position + 8, position + 8 + length
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            try:
                # Compressed text is inflated to just over MAX_FIELD at most, from at most twice that much input.
                keyword, text = png_text(kind, data[start:min(end, start + 2 * MAX_FIELD)])
            except (ValueError, zlib.error) as exc:
                found.error("png", f"unreadable {kind.decode()} chunk: {exc}")
            else:
                if keyword == PNG_XMP_KEY:
                    found.xmp.append(text)  # over MAX_FIELD when too long to parse: read_xmp says so
                elif keyword in GENERATOR_KEYS:
                    if len(text) > MAX_FIELD:
                        found.truncated(f"png:{keyword}")
                    encoding = "utf-8" if kind == b"iTXt" else "latin-1"
                    found.texts.setdefault(keyword, text[:MAX_FIELD].decode(encoding, "replace"))
        elif kind == b"eXIf":
            found.exif.append(data[start:end])
        elif kind == b"caBX":
            found.c2pa_store("png:caBX", data[start:end])
        elif kind == b"IEND":
            break
        position = end + 4  # CRC


def png_text(kind: bytes, body: bytes) -> tuple[str, bytes]:
    """(keyword, text bytes) of a tEXt, zTXt or iTXt chunk, the text cut just past MAX_FIELD; only the keyword
    when it is not one worth inflating."""
    keyword, sep, rest = body.partition(b"\x00")
    if not sep:
        raise ValueError("no keyword terminator")
    keyword = keyword.decode("latin-1")
    if keyword not in GENERATOR_KEYS and keyword != PNG_XMP_KEY:
        return keyword, b""
    if kind == b"tEXt":
        return keyword, rest[:MAX_FIELD + 1]
    if kind == b"zTXt":
        return keyword, _inflate(rest[1:])
    compressed, text = rest[:1] == b"\x01", rest[2:]
    _language, _, text = text.partition(b"\x00")
    _translated, _, text = text.partition(b"\x00")
    return keyword, _inflate(text) if compressed else text[:MAX_FIELD + 1]


def _inflate(compressed: bytes) -> bytes:
    return zlib.decompressobj().decompress(compressed, MAX_FIELD + 1)  # a bounded output: zip bombs stop here


def _walk_webp(data: bytes, found: Collector):
    position = 12
    for _ in range(MAX_RECORDS):
        if position + 8 > len(data):
            break
        kind = data[position:position + 4]
        size = int.from_bytes(data[position + 4:position + 8], "little")
        start, end = position + 8, position + 8 + size
        if kind == b"EXIF":
            chunk = data[start:end]
            found.exif.append(chunk[6:] if chunk.startswith(b"Exif\x00\x00") else chunk)
        elif kind == b"XMP ":
            found.xmp.append(data[start:end])
        elif kind == b"C2PA":
            found.c2pa_store("webp:C2PA", data[start:end])
        position = end + (size & 1)  # chunks are padded to even sizes


def _walk_bmff(data: bytes, found: Collector):
    """HEIF / AVIF top-level boxes: a C2PA manifest store sits in a 'uuid' box (EXIF and XMP are items in the
    'meta' box, which Pillow's plugins read: see add_bmff_metadata)."""
    position = 0
    for _ in range(MAX_RECORDS):
        if position + 8 > len(data):
            break
        size, kind, header = int.from_bytes(data[position:position + 4], "big"), data[position + 4:position + 8], 8
        if size == 1:  # a 64-bit size follows the type
            size, header = int.from_bytes(data[position + 8:position + 16], "big"), 16
        elif size == 0:  # the box runs to the end of the file
            size = len(data) - position
        if size < header:
            break
        start, end = position + header, position + size
        if kind == b"uuid" and data[start:start + 16] == C2PA_BMFF_UUID:
            # FullBox version and flags (4 bytes), a NUL-terminated purpose, and for "manifest" an 8-byte offset
            # to a Merkle map (0 when there is none), then the JUMBF store.
            body = data[start + 20:end]
            purpose, _, rest = body.partition(b"\x00")
            if purpose == b"manifest":
                found.c2pa_store("bmff:uuid", rest[8:])
        position = end


def _is_c2pa_store(store: bytes) -> bool:
    """A JUMBF superbox ("jumb") whose description box ("jumd") carries the c2pa type and label."""
    return store[4:8] == b"jumb" and b"jumd" in store[8:32] and b"c2pa" in store[16:80]


def add_pillow_metadata(image: Image.Image, found: Collector):
    xmp = image.info.get("xmp")
    if xmp and not found.xmp:
        found.xmp.append(xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp))
    if not found.exif:
        exif = image.getexif()
        if exif:
            found.exif.append(exif)


def add_bmff_metadata(data: bytes, found: Collector):
    """HEIF and AVIF keep EXIF and XMP as items of the 'meta' box: Pillow's plugins read them when the file is
    opened, before (and without) decoding any pixels."""
    try:
        with Image.open(io.BytesIO(data), formats=BMFF_FORMATS) as image:
            add_pillow_metadata(image, found)
    except (OSError, ValueError, SyntaxError, EOFError, RuntimeError, Image.DecompressionBombError) as exc:
        # what the plugins raise on damaged files (Pillow's bomb check runs on open, even without decoding)
        found.error("image", f"HEIF/AVIF metadata unreadable: {type(exc).__name__}: {exc}")


def find_raw_xmp(data: bytes, found: Collector):
    """An XMP packet anywhere in the file (GIF application extensions, TIFF without tag 700, odd writers)."""
    start = data.find(b"<x:xmpmeta")
    if start < 0:
        return
    end = data.find(b"</x:xmpmeta>", start, start + MAX_FIELD)
    if end < 0:
        found.error("xmp", f"an XMP packet with no end within {MAX_FIELD:,} bytes: not parsed")
        return
    found.xmp.append(data[start:end + len(b"</x:xmpmeta>")])
