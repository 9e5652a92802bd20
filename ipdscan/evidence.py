"""What an image file says about its own origin: C2PA manifests, IPTC XMP and generator metadata.

This is evidence reported beside IPD-Net's score, never mixed into it: metadata is easy to strip and
easy to forge, while the pixels are what the model judges. Nothing here decodes pixels.

    evidence = find_evidence(data)
    evidence.codes          # ["c2pa:present", "c2pa:trainedAlgorithmicMedia"]
    evidence.ai_indicated   # True: the file declares AI generation
    evidence.detail         # {"c2pa": {"claim_generator": ..., "validation_state": "Valid", ...}}

Codes:
    c2pa:present                      a C2PA manifest store is embedded (JPEG APP11, PNG caBX, WebP C2PA chunk,
                                      HEIF/AVIF C2PA uuid box)
    c2pa:<type>, xmp:<type>           an IPTC digital source type, from a C2PA action or Iptc4xmpExt:DigitalSourceType,
                                      e.g. c2pa:trainedAlgorithmicMedia, xmp:digitalCapture
    xmp:AISystemUsed, xmp:AIPromptInformation     the IPTC 2025.1 generative-AI fields
    exif:software:<Name>, png:software:<Name>, xmp:creatortool:<Name>, c2pa:generator:<Name>
                                      a software field names a known generator (GENERATORS)
    png:parameters, exif:parameters   Stable Diffusion WebUI / Forge generation parameters (PNG text, EXIF UserComment)
    comfyui:prompt, comfyui:workflow  ComfyUI's graph (PNG text, or "prompt:{...}" in EXIF Make/Model/ImageDescription)
    novelai:comment                   NovelAI's Comment JSON
    invokeai:metadata, invokeai:sd-metadata, invokeai:dream
    fooocus:scheme, fooocus:parameters
    easydiffusion:metadata
Every code declares AI generation except c2pa:present and the digital source types outside AI_SOURCE_TYPES.

Hostile files cost bounded time: containers are walked record by record up to MAX_RECORDS, any one XMP packet or
text field is considered up to MAX_FIELD bytes (compressed ones are inflated no further), XML is parsed by
defusedxml with DTDs refused, and every pattern is a plain substring test or a backtracking-free regex.
"""
from __future__ import annotations

import io
import json
import re
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from functools import cache
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_xml
from PIL import Image, features
from pillow_heif import register_heif_opener

MAX_FIELD = 1 << 20  # bytes of one XMP packet or text field considered
MAX_DETAIL_TEXT = 500  # characters of a prompt or parameters text kept in the detail
MAX_RECORDS = 65_536  # JPEG segments, PNG chunks or RIFF chunks walked
MAX_ERRORS = 10

IPTC_SOURCE_TYPE_URI = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# The IPTC Digital Source Type vocabulary (current and retired terms); anything else stays in the detail only.
IPTC_SOURCE_TYPES = frozenset({
    "digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm", "print", "minorHumanEdits",
    "humanEdits", "compositeCapture", "algorithmicallyEnhanced", "digitalCreation", "digitalArt", "dataDrivenMedia",
    "trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia", "compositeSynthetic",
    "composite", "screenCapture", "virtualRecording", "softwareImage",
})
AI_SOURCE_TYPES = frozenset({
    "trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia", "compositeSynthetic",
})
IPTC_AI_FIELDS = ("AISystemUsed", "AIPromptInformation")
XMP_PROPERTIES = frozenset({"DigitalSourceType", "CreatorTool", *IPTC_AI_FIELDS})  # by local name, any namespace

# Generators whose name in a Software / CreatorTool / claim-generator field declares AI generation. Matched
# case-insensitively on word boundaries; patterns are narrow where the plain word is also common (Imagen is
# Spanish for "image", Firefly and Flux name other products).
GENERATORS = {
    "Midjourney": r"midjourney",
    "DALL-E": r"dall[-\u00b7 ]?e",
    "StableDiffusion": r"stable[ _-]?diffusion|sdxl",
    "Firefly": r"adobe firefly",
    "Imagen": r"google imagen|imagen [1-4]",
    "NovelAI": r"novel ?ai",
    "ComfyUI": r"comfy ?ui",
    "Automatic1111": r"automatic1111|a1111",
    "InvokeAI": r"invoke ?ai",
    "Fooocus": r"fooocus",
    "Leonardo": r"leonardo[. ]ai",
    "Ideogram": r"ideogram",
    "Flux": r"flux\.1|flux[ -](?:dev|schnell|pro|kontext)|black forest labs",
    "EasyDiffusion": r"easy[ -]?diffusion",
    "DrawThings": r"draw ?things",
    "DreamStudio": r"dreamstudio",
}
_GENERATOR_PATTERNS = [(name, re.compile(rf"\b(?:{pattern})\b", re.IGNORECASE)) for name, pattern in GENERATORS.items()]

# PNG text keywords worth reading; other chunks are skipped without being inflated.
GENERATOR_KEYS = frozenset({
    "parameters", "prompt", "workflow", "negative_prompt", "use_stable_diffusion_model", "Software", "Comment",
    "Source", "invokeai_metadata", "invokeai_graph", "sd-metadata", "Dream", "fooocus_scheme",
})
INVOKEAI_KEYS = {"invokeai_metadata": "invokeai:metadata", "invokeai_graph": "invokeai:metadata",
                 "sd-metadata": "invokeai:sd-metadata", "Dream": "invokeai:dream"}
PNG_XMP_KEY = "XML:com.adobe.xmp"
JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
RDF_RESOURCE = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}resource"
C2PA_MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "heif": "image/heif", "avif": "image/avif"}
# The usertype of the ISO BMFF 'uuid' box that holds a C2PA manifest store in HEIF and AVIF files (C2PA 2.x, A.5).
C2PA_BMFF_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
AVIF_BRANDS = (b"avif", b"avis")
BMFF_CONTAINERS = ("heif", "avif")
# Pillow's plugins: HEIF from pillow-heif, AVIF Pillow's own where it was built with it (>= 11.3)
BMFF_FORMATS = ("HEIF", *(("AVIF",) if features.check("avif") else ()))
# Read manifests without touching the network: no remote manifests, no OCSP, no hosts at all.
C2PA_OFFLINE = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}, "core": {"allowed_network_hosts": []}}
register_heif_opener()  # idempotent; ipdscan.decode registers it too, but evidence may be used on its own
_SOURCE_TYPE_IN_BYTES = re.compile(rb"cv\.iptc\.org/newscodes/digitalsourcetype/([A-Za-z]{1,64})")


@dataclass
class Evidence:
    codes: list[str] = field(default_factory=list)  # sorted, unique
    detail: dict = field(default_factory=dict)  # JSON types only, keys sorted: as every report shows it

    @property
    def ai_indicated(self) -> bool:
        return codes_indicate_ai(self.codes)


def codes_indicate_ai(codes) -> bool:
    """Whether any of the codes declares AI generation (see the module docstring)."""
    return any(_declares_ai(code) for code in codes if code)


def _declares_ai(code: str) -> bool:
    source, _, what = code.partition(":")
    if code == "c2pa:present":
        return False
    if source in ("c2pa", "xmp") and what in IPTC_SOURCE_TYPES:
        return what in AI_SOURCE_TYPES
    return True  # generator metadata, a generator's name, or an IPTC AI field


def find_evidence(data: bytes, image: Image.Image | None = None) -> Evidence:
    """Provenance and generator metadata in an image file's bytes. Never raises.

    ``image``, when the caller already has the file open in Pillow, adds the XMP and EXIF that Pillow's plugins
    parsed from containers not walked here when the bytes gave none; HEIF and AVIF files, whose EXIF and XMP only
    Pillow's plugins read, are opened here for that when no ``image`` is given.
    """
    found = _Collector()
    container = _guarded(found, "container", _walk, data, found) or ""
    if image is not None:
        _guarded(found, "image", _add_pillow_metadata, image, found)
    elif container in BMFF_CONTAINERS:
        _guarded(found, "image", _add_bmff_metadata, data, found)
    if not found.xmp:
        _guarded(found, "xmp", _find_raw_xmp, data, found)
    _guarded(found, "c2pa", _read_c2pa, found, data, container)
    _guarded(found, "exif", _read_exif, found)
    _guarded(found, "png", _read_png_text, found)
    _guarded(found, "xmp", _read_xmp, found)
    return found.evidence()


def _guarded(found: "_Collector", source: str, function, *args):
    try:
        return function(*args)
    except Exception as exc:  # a parser bug must cost a note, not the scan
        found.error(source, f"{type(exc).__name__}: {exc}")
        return None


class _Collector:
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
            errors.append(f"{source}: {_clip(message)}")

    def evidence(self) -> Evidence:
        # Through JSON once: what a report holds, and what merge reads back, is then the detail itself.
        return Evidence(codes=sorted(self.codes), detail=json.loads(json.dumps(self.detail, sort_keys=True)))


# Containers: walk the records that can hold metadata, copying only those.

def _walk(data: bytes, found: _Collector) -> str:
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


def _walk_jpeg(data: bytes, found: _Collector):
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


def _walk_png(data: bytes, found: _Collector):
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
                keyword, text = _png_text(kind, data[start:min(end, start + 2 * MAX_FIELD)])
            except (ValueError, zlib.error) as exc:
                found.error("png", f"unreadable {kind.decode()} chunk: {exc}")
            else:
                if keyword == PNG_XMP_KEY:
                    found.xmp.append(text)  # over MAX_FIELD when too long to parse: _read_xmp says so
                elif keyword in GENERATOR_KEYS:
                    encoding = "utf-8" if kind == b"iTXt" else "latin-1"
                    found.texts.setdefault(keyword, text[:MAX_FIELD].decode(encoding, "replace"))
        elif kind == b"eXIf":
            found.exif.append(data[start:end])
        elif kind == b"caBX":
            found.c2pa_store("png:caBX", data[start:end])
        elif kind == b"IEND":
            break
        position = end + 4  # CRC


def _png_text(kind: bytes, body: bytes) -> tuple[str, bytes]:
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


def _walk_webp(data: bytes, found: _Collector):
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


def _walk_bmff(data: bytes, found: _Collector):
    """HEIF / AVIF top-level boxes: a C2PA manifest store sits in a 'uuid' box (EXIF and XMP are items in the
    'meta' box, which Pillow's plugins read: see _add_bmff_metadata)."""
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


def _add_pillow_metadata(image: Image.Image, found: _Collector):
    xmp = image.info.get("xmp")
    if xmp and not found.xmp:
        found.xmp.append(xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp))
    if not found.exif:
        exif = image.getexif()
        if exif:
            found.exif.append(exif)


def _add_bmff_metadata(data: bytes, found: _Collector):
    """HEIF and AVIF keep EXIF and XMP as items of the 'meta' box: Pillow's plugins read them when the file is
    opened, before (and without) decoding any pixels."""
    try:
        with Image.open(io.BytesIO(data), formats=BMFF_FORMATS) as image:
            _add_pillow_metadata(image, found)
    except (OSError, ValueError, SyntaxError, EOFError, RuntimeError, Image.DecompressionBombError) as exc:
        # what the plugins raise on damaged files (Pillow's bomb check runs on open, even without decoding)
        found.error("image", f"HEIF/AVIF metadata unreadable: {type(exc).__name__}: {exc}")


def _find_raw_xmp(data: bytes, found: _Collector):
    """An XMP packet anywhere in the file (GIF application extensions, TIFF without tag 700, odd writers)."""
    start = data.find(b"<x:xmpmeta")
    if start < 0:
        return
    end = data.find(b"</x:xmpmeta>", start, start + MAX_FIELD)
    if end < 0:
        found.error("xmp", f"an XMP packet with no end within {MAX_FIELD:,} bytes: not parsed")
        return
    found.xmp.append(data[start:end + len(b"</x:xmpmeta>")])


# Readers: raw metadata -> codes and detail.

def _read_c2pa(found: _Collector, data: bytes, container: str):
    if not found.c2pa:
        return
    info = {"containers": sorted({where for where, _ in found.c2pa})}
    verified = _read_c2pa_verified(data, C2PA_MIME[container], info) if _c2pa_module() else None
    if verified is None:
        info["verified"] = False
        info.setdefault("note", "unverified: a raw scan of the manifest bytes (c2pa-python is not installed)")
        verified = {"digital_source_types": sorted({
            IPTC_SOURCE_TYPE_URI + term.decode() for _, store in found.c2pa
            for term in _SOURCE_TYPE_IN_BYTES.findall(store)})}
    info.update(verified)
    found.add("c2pa:present", "c2pa", **info)
    for uri in info["digital_source_types"]:
        term = _source_type_term(uri)
        if term:
            found.codes.add(f"c2pa:{term}")
    for name in _generator_names(info.get("claim_generator", "")):
        found.codes.add(f"c2pa:generator:{name}")


@cache
def _c2pa_module():
    try:
        import c2pa
    except Exception:  # not installed, or its native library cannot load here
        return None
    return c2pa


def _read_c2pa_verified(data: bytes, mime: str, info: dict) -> dict | None:
    """The manifest store as c2pa-python reads and validates it, offline; None (with a note) if it cannot."""
    c2pa = _c2pa_module()
    try:
        with c2pa.Context.from_dict(C2PA_OFFLINE) as context, \
                c2pa.Reader(mime, io.BytesIO(data), context=context) as reader:
            return _summarise_store(json.loads(reader.json()))
    except Exception as exc:  # c2pa.C2paError for a malformed store, anything else for a binding problem
        info["note"] = f"unverified: c2pa-python could not read it ({_clip(str(exc), 200)}); a raw scan instead"
        return None


def _summarise_store(store: dict) -> dict:
    """Claim generator, digital source types and validation from c2pa-python's manifest store report."""
    manifests = store.get("manifests") or {}
    active = manifests.get(store.get("active_manifest")) or {}
    generator = active.get("claim_generator") or ""
    if not generator:
        generator_info = active.get("claim_generator_info") or []
        if isinstance(generator_info, dict):
            generator_info = [generator_info]
        generator = ", ".join(str(item.get("name", "")) for item in generator_info if isinstance(item, dict))
    source_types = set()
    for manifest in manifests.values():  # ingredients' manifests too: an edit of an AI image is still one
        for assertion in manifest.get("assertions") or []:
            if str(assertion.get("label", "")).startswith("c2pa.actions"):
                for action in (assertion.get("data") or {}).get("actions") or []:
                    if isinstance(action, dict) and isinstance(action.get("digitalSourceType"), str):
                        source_types.add(action["digitalSourceType"])
    return {"verified": True, "claim_generator": _clip(generator, 200),
            "digital_source_types": sorted(source_types),
            "validation_state": store.get("validation_state", ""),
            "validation_status": [str(status.get("code")) for status in store.get("validation_status") or []][:20]}


def _read_exif(found: _Collector):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about each corrupt tag; the tags it could read still count
        for exif in found.exif[:4]:
            if not isinstance(exif, Image.Exif):
                try:
                    exif = _parse_exif(exif)
                except (SyntaxError, ValueError, EOFError, OSError, struct.error) as exc:  # Pillow on malformed TIFF
                    found.error("exif", f"unreadable EXIF: {type(exc).__name__}: {exc}")
                    continue
            _read_exif_tags(found, exif)


def _read_exif_tags(found: _Collector, exif: Image.Exif):
    text = {name: _exif_text(exif.get(tag)) for name, tag in
            (("software", 0x0131), ("description", 0x010E), ("make", 0x010F), ("model", 0x0110))}
    xmp = exif.get(700)  # TIFF's XMLPacket
    if isinstance(xmp, bytes) and not found.xmp:
        found.xmp.append(xmp)
    for name in _generator_names(text["software"]):
        found.add(f"exif:software:{name}", "exif", software=_clip(text["software"], 200))
    for name in ("make", "model", "description"):
        # ComfyUI's WebP and animated saves write "prompt:{json}" and "workflow:{json}" into these tags.
        kind = text[name].partition(":")[0]
        if kind in ("prompt", "workflow") and text[name][len(kind) + 1:].lstrip().startswith("{"):
            found.add(f"comfyui:{kind}", "exif", **{name: _clip(text[name])})
    comment = _user_comment(exif.get_ifd(0x8769).get(0x9286))
    code = _parameters_code(comment, "exif")
    if code:
        found.add(code, "exif", user_comment=_clip(comment))


def _parse_exif(blob: bytes) -> Image.Exif:
    exif = Image.Exif()
    exif.load(blob)
    return exif


def _exif_text(value) -> str:
    if isinstance(value, bytes):
        value = value[:MAX_FIELD].decode("utf-8", "replace")
    if not isinstance(value, str):
        return ""
    value = value[:MAX_FIELD]
    try:  # Pillow reads ASCII tags as Latin-1, and writers put UTF-8 there ("DALL\u00b7E")
        value = value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        pass
    return value.strip(" \x00")


def _user_comment(raw) -> str:
    """EXIF UserComment: an 8-byte character-code prefix, then the text."""
    if isinstance(raw, str):
        return raw[:MAX_FIELD]
    if not isinstance(raw, bytes):
        return ""
    prefix, body = raw[:8], raw[8:8 + 2 * MAX_FIELD]
    if prefix == b"UNICODE\x00":
        body = body[:len(body) // 2 * 2]
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return body.decode("utf-16", "replace")
        # No BOM: the standard means the file's byte order, writers differ; in UTF-16 text that is mostly ASCII,
        # the zero bytes fall on even offsets in big-endian and on odd ones in little-endian.
        little = body[1:512:2].count(0) > body[0:512:2].count(0)
        return body.decode("utf-16-le" if little else "utf-16-be", "replace")
    if prefix in (b"ASCII\x00\x00\x00", b"\x00" * 8):
        return body[:MAX_FIELD].decode("utf-8", "replace").rstrip("\x00")
    return raw[:MAX_FIELD].decode("utf-8", "replace").rstrip("\x00")  # no prefix at all: some writers skip it


def _parameters_code(text: str, source: str) -> str:
    """The code for a generation-parameters text (PNG "parameters" chunk or EXIF UserComment), or ""."""
    head = text.lstrip()[:1]
    if head == "{":
        if "Fooocus" in text:
            return "fooocus:parameters"
        if '"use_stable_diffusion_model"' in text:
            return "easydiffusion:metadata"
        return ""
    # Stable Diffusion WebUI / Forge: the prompt, then a line "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: ..."
    if "Steps: " in text and ("Sampler: " in text or "CFG scale: " in text or "Seed: " in text):
        return f"{source}:parameters"
    return ""


def _read_png_text(found: _Collector):
    texts = found.texts
    for key, text in texts.items():
        code = ""
        if key == "parameters":
            code = _parameters_code(text, "png")
        elif key in ("prompt", "workflow") and text.lstrip().startswith("{"):
            # ComfyUI's API graph has nodes keyed by id, each with a class_type; its UI workflow has "nodes".
            if '"class_type"' in text or (key == "workflow" and '"nodes"' in text):
                code = f"comfyui:{key}"
        elif key == "Comment" and text.lstrip().startswith("{"):
            if '"steps"' in text and ('"sampler"' in text or '"uc"' in text):
                code = "novelai:comment"
        elif key == "Software":
            for name in _generator_names(text):
                found.add(f"png:software:{name}", "png", Software=_clip(text, 200))
        elif key in INVOKEAI_KEYS and text.strip():
            code = INVOKEAI_KEYS[key]
        elif key == "fooocus_scheme" and text.strip():
            code = "fooocus:scheme"
        if code:
            found.add(code, "png", **{key: _clip(text)})
    # Easy Diffusion writes each setting as its own chunk: a plain-text prompt beside its negative prompt.
    if "use_stable_diffusion_model" in texts or (
            "negative_prompt" in texts and "prompt" in texts and not texts["prompt"].lstrip().startswith("{")):
        found.add("easydiffusion:metadata", "png", **{key: _clip(texts[key]) for key in
                                                       ("prompt", "use_stable_diffusion_model") if key in texts})


def _read_xmp(found: _Collector):
    for packet in found.xmp[:4]:
        if len(packet) > MAX_FIELD:
            found.error("xmp", f"a {len(packet):,}-byte XMP packet, over {MAX_FIELD:,}: not parsed")
            continue
        try:
            # XMP never needs a DTD: refusing them stops entity-expansion bombs before any expansion.
            root = parse_xml(packet.strip(b"\x00 \t\r\n"), forbid_dtd=True)
        except (DefusedXmlException, ParseError, ValueError) as exc:
            found.error("xmp", f"{type(exc).__name__}: {exc}")
            continue
        for element in root.iter():
            name = _local_name(element.tag)
            if name in XMP_PROPERTIES:
                _read_xmp_property(found, name, _xmp_value(element))
            for attribute, value in element.attrib.items():
                name = _local_name(attribute)
                if name in XMP_PROPERTIES:
                    _read_xmp_property(found, name, value)


def _xmp_value(element) -> str:
    """rdf:resource, the text, or the first item of an rdf:Alt/Seq/Bag: never a walk over the subtree,
    which nested properties in a hostile packet would make quadratic."""
    value = element.get(RDF_RESOURCE) or (element.text or "").strip()
    for container in element[:1] if not value else ():
        for item in container[:1]:
            value = item.text or ""
    return value


def _read_xmp_property(found: _Collector, name: str, value: str):
    value = value.strip()
    if not value:
        return
    if name == "DigitalSourceType":
        term = _source_type_term(value)
        if term:
            found.codes.add(f"xmp:{term}")
        sources = found.detail.setdefault("xmp", {}).setdefault("digital_source_types", [])
        if value not in sources and len(sources) < 10:
            sources.append(_clip(value, 200))
    elif name in IPTC_AI_FIELDS:
        found.add(f"xmp:{name}", "xmp", **{name: _clip(value)})
    elif name == "CreatorTool":
        for generator in _generator_names(value):
            found.add(f"xmp:creatortool:{generator}", "xmp", CreatorTool=_clip(value, 200))


def _local_name(tag) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _source_type_term(value: str) -> str:
    """The IPTC term of a digital source type given as its URI (http or https) or bare, or ""."""
    value = value.strip()
    for prefix in (IPTC_SOURCE_TYPE_URI, IPTC_SOURCE_TYPE_URI.replace("http:", "https:")):
        if value.startswith(prefix):
            value = value[len(prefix):].rstrip("/")
            break
    return value if value in IPTC_SOURCE_TYPES else ""


def _generator_names(text: str) -> list[str]:
    text = text[:1024]
    return [name for name, pattern in _GENERATOR_PATTERNS if pattern.search(text)] if text else []


def _clip(text: str, limit: int = MAX_DETAIL_TEXT) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"
