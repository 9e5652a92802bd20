"""Readers: the raw metadata a container walk collected (EXIF, PNG text, XMP) -> evidence codes and detail."""
from __future__ import annotations

import struct
import warnings
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_xml
from PIL import Image

from .containers import Collector
from .vocabulary import IPTC_AI_FIELDS, MAX_FIELD, clip, generator_names, source_type_term

XMP_PROPERTIES = frozenset({"DigitalSourceType", "CreatorTool", *IPTC_AI_FIELDS})  # by local name, any namespace
INVOKEAI_KEYS = {"invokeai_metadata": "invokeai:metadata", "invokeai_graph": "invokeai:metadata",
                 "sd-metadata": "invokeai:sd-metadata", "Dream": "invokeai:dream"}
RDF_RESOURCE = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}resource"


def read_exif(found: Collector):
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


def _read_exif_tags(found: Collector, exif: Image.Exif):
    text = {name: _exif_text(exif.get(tag)) for name, tag in
            (("software", 0x0131), ("description", 0x010E), ("make", 0x010F), ("model", 0x0110))}
    xmp = exif.get(700)  # TIFF's XMLPacket
    if isinstance(xmp, bytes) and not found.xmp:
        found.xmp.append(xmp)
    for name in generator_names(text["software"]):
        found.add(f"exif:software:{name}", "exif", software=clip(text["software"], 200))
    for name in ("make", "model", "description"):
        # ComfyUI's WebP and animated saves write "prompt:{json}" and "workflow:{json}" into these tags.
        kind = text[name].partition(":")[0]
        if kind in ("prompt", "workflow") and text[name][len(kind) + 1:].lstrip().startswith("{"):
            found.add(f"comfyui:{kind}", "exif", **{name: clip(text[name])})
    comment = _user_comment(exif.get_ifd(0x8769).get(0x9286))
    code = _parameters_code(comment, "exif")
    if code:
        found.add(code, "exif", user_comment=clip(comment))


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


def read_png_text(found: Collector):
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
            for name in generator_names(text):
                found.add(f"png:software:{name}", "png", Software=clip(text, 200))
        elif key in INVOKEAI_KEYS and text.strip():
            code = INVOKEAI_KEYS[key]
        elif key == "fooocus_scheme" and text.strip():
            code = "fooocus:scheme"
        if code:
            found.add(code, "png", **{key: clip(text)})
    # Easy Diffusion writes each setting as its own chunk: a plain-text prompt beside its negative prompt.
    if "use_stable_diffusion_model" in texts or (
            "negative_prompt" in texts and "prompt" in texts and not texts["prompt"].lstrip().startswith("{")):
        found.add("easydiffusion:metadata", "png", **{key: clip(texts[key]) for key in
                                                       ("prompt", "use_stable_diffusion_model") if key in texts})


def read_xmp(found: Collector):
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


def _read_xmp_property(found: Collector, name: str, value: str):
    value = value.strip()
    if not value:
        return
    if name == "DigitalSourceType":
        term = source_type_term(value)
        if term:
            found.codes.add(f"xmp:{term}")
        sources = found.detail.setdefault("xmp", {}).setdefault("digital_source_types", [])
        if value not in sources and len(sources) < 10:
            sources.append(clip(value, 200))
    elif name in IPTC_AI_FIELDS:
        found.add(f"xmp:{name}", "xmp", **{name: clip(value)})
    elif name == "CreatorTool":
        for generator in generator_names(value):
            found.add(f"xmp:creatortool:{generator}", "xmp", CreatorTool=clip(value, 200))


def _local_name(tag) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""
