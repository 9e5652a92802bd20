"""The evidence vocabulary: which codes declare AI generation, the IPTC source types and the generators' names,
and the limits that keep hostile files cheap."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

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


def source_type_term(value: str) -> str:
    """The IPTC term of a digital source type given as its URI (http or https) or bare, or ""."""
    value = value.strip()
    for prefix in (IPTC_SOURCE_TYPE_URI, IPTC_SOURCE_TYPE_URI.replace("http:", "https:")):
        if value.startswith(prefix):
            value = value[len(prefix):].rstrip("/")
            break
    return value if value in IPTC_SOURCE_TYPES else ""


def generator_names(text: str) -> list[str]:
    text = text[:1024]
    return [name for name, pattern in _GENERATOR_PATTERNS if pattern.search(text)] if text else []


def clip(text: str, limit: int = MAX_DETAIL_TEXT) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


@dataclass
class Evidence:
    codes: list[str] = field(default_factory=list)  # sorted, unique
    detail: dict = field(default_factory=dict)  # JSON types only, keys sorted: as every report shows it

    @property
    def ai_indicated(self) -> bool:
        return codes_indicate_ai(self.codes)
