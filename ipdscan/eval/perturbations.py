"""Perturbations for robustness sweeps (``ipdscan eval --perturb``) and training augmentation: JPEG
re-encoding, Gaussian blur and resizing, applied to a decoded image."""
from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass

from PIL import Image, ImageFilter


def jpeg_reencode(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def gaussian_blur(image: Image.Image, sigma: float) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=sigma)) if sigma > 0 else image  # PIL's radius is sigma


def rescale(image: Image.Image, factor: float) -> Image.Image:
    """Bilinear resize by ``factor``; PIL widens the filter when shrinking, so downscaling is antialiased."""
    width, height = image.size
    return image.resize((max(1, round(width * factor)), max(1, round(height * factor))), Image.Resampling.BILINEAR)


PERTURBATIONS = {"jpeg": jpeg_reencode, "blur": gaussian_blur, "resize": rescale}
STRENGTH_LABELS = {"jpeg": "JPEG quality", "blur": "Gaussian blur sigma", "resize": "resize factor"}


@dataclass(frozen=True)
class Perturbation:
    kind: str  # jpeg (quality 1..100) | blur (sigma >= 0) | resize (factor > 0)
    strength: float

    def __str__(self) -> str:
        return f"{self.kind}={self.strength:g}"

    def __call__(self, image: Image.Image) -> Image.Image:
        return PERTURBATIONS[self.kind](image, self.strength)


def parse_perturbations(specs: Iterable[str]) -> list[Perturbation]:
    """["jpeg=95,75,50", "blur=1,2", "resize=0.5"] -> one Perturbation per strength. Raises ValueError."""
    parsed = []
    for spec in specs:
        kind, _, values = spec.partition("=")
        kind = kind.strip().lower()
        if kind not in PERTURBATIONS or not values:
            raise ValueError(f"perturbation {spec!r}: write KIND=V1,V2,... with KIND one of {', '.join(PERTURBATIONS)}")
        for value in values.split(","):
            try:
                strength = float(value)
            except ValueError:
                raise ValueError(f"perturbation {spec!r}: {value!r} is not a number") from None
            valid = {"jpeg": 1 <= strength <= 100 and strength == int(strength), "blur": 0 <= strength <= 50,
                     "resize": 0 < strength <= 8}[kind]
            if not valid:
                raise ValueError(f"perturbation {spec!r}: {value} is out of range "
                                 "(jpeg: integer quality 1..100; blur: sigma 0..50; resize: factor in (0, 8])")
            parsed.append(Perturbation(kind, strength))
    return parsed


