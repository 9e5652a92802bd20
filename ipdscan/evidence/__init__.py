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

from PIL import Image

from .containers import BMFF_CONTAINERS, Collector, add_bmff_metadata, add_pillow_metadata, find_raw_xmp, walk_container
from .manifests import read_c2pa
from .readers import read_exif, read_png_text, read_xmp
from .vocabulary import MAX_DETAIL_TEXT, Evidence, codes_indicate_ai

__all__ = ["MAX_DETAIL_TEXT", "Evidence", "codes_indicate_ai", "find_evidence"]


def find_evidence(data: bytes, image: Image.Image | None = None) -> Evidence:
    """Provenance and generator metadata in an image file's bytes. Never raises.

    ``image``, when the caller already has the file open in Pillow, adds the XMP and EXIF that Pillow's plugins
    parsed from containers not walked here when the bytes gave none; HEIF and AVIF files, whose EXIF and XMP only
    Pillow's plugins read, are opened here for that when no ``image`` is given.
    """
    found = Collector()
    container = _guarded(found, "container", walk_container, data, found) or ""
    if image is not None:
        _guarded(found, "image", add_pillow_metadata, image, found)
    elif container in BMFF_CONTAINERS:
        _guarded(found, "image", add_bmff_metadata, data, found)
    if not found.xmp:
        _guarded(found, "xmp", find_raw_xmp, data, found)
    _guarded(found, "c2pa", read_c2pa, found, data, container)
    _guarded(found, "exif", read_exif, found)
    _guarded(found, "png", read_png_text, found)
    _guarded(found, "xmp", read_xmp, found)
    return found.evidence()


def _guarded(found: Collector, source: str, function, *args):
    try:
        return function(*args)
    except Exception as exc:  # a parser bug must cost a note, not the scan
        found.error(source, f"{type(exc).__name__}: {exc}")
        return None
