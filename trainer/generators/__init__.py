"""Generators that turn a real RGB window into a content-matched fake.

Each has a ``name``, ``prepare(train_windows, workdir, seed) -> info dict`` (train or load; may raise
RuntimeError when it cannot run here) and ``__call__(window uint8 HxWx3) -> fake uint8 HxWx3``. Generators
come in families (``FAMILIES``): the corpus gives each family its share of the photos, and each photo draws one
member of its family.
"""
from __future__ import annotations

from pathlib import Path

from . import realcugan, realesrgan, waifu2x
from .autogan import UPSAMPLERS, AutoGAN
from .cyclegan import CycleGAN
from .taef2 import TAEF2

FAMILIES = {
    TAEF2.name: (TAEF2.name,),
    "realesrgan": tuple(realesrgan.MODELS),
    "realcugan": tuple(realcugan.MODELS),
    "waifu2x": tuple(waifu2x.MODELS),
    "cyclegan": (CycleGAN.name,),
    "autogan": tuple(f"autogan_{u}" for u in UPSAMPLERS),
}
NAMES = tuple(name for members in FAMILIES.values() for name in members)
# Corpus v3's families; autogan added nothing measurable in v2's ablation and is left out by default.
DEFAULT_FAMILIES = ("taef2", "realesrgan", "realcugan", "waifu2x", "cyclegan")


def family_of(name: str) -> str:
    return next(family for family, members in FAMILIES.items() if name in members)


def make(name: str, autogan_steps: int = 300, autogan_width: int = 32, taef2_weights: Path | None = None):
    if name.startswith("autogan_") and name.removeprefix("autogan_") in UPSAMPLERS:
        return AutoGAN(name.removeprefix("autogan_"), steps=autogan_steps, width=autogan_width)
    if name in realesrgan.MODELS:
        return realesrgan.RealESRGAN(name)
    if name in realcugan.MODELS:
        return realcugan.RealCUGAN(name)
    if name in waifu2x.MODELS:
        return waifu2x.Waifu2x(name)
    if name == CycleGAN.name:
        return CycleGAN()
    if name == TAEF2.name:
        return TAEF2(taef2_weights)
    raise ValueError(f"unknown generator {name!r}; choose from {', '.join(NAMES)}")
