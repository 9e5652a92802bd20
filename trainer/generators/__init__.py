"""Generators that turn a real RGB window into a content-matched fake.

Each has a ``name``, ``prepare(train_windows, workdir, seed) -> info dict`` (train or load; may raise
RuntimeError when it cannot run here) and ``__call__(window uint8 HxWx3) -> fake uint8 HxWx3``.
"""
from __future__ import annotations

from pathlib import Path

from .autogan import UPSAMPLERS, AutoGAN
from .realesrgan import MODELS, RealESRGAN
from .taef2 import TAEF2

NAMES = tuple(f"autogan_{u}" for u in UPSAMPLERS) + tuple(MODELS) + (TAEF2.name,)


def make(name: str, autogan_steps: int = 300, autogan_width: int = 32, taef2_weights: Path | None = None):
    if name.startswith("autogan_") and name.removeprefix("autogan_") in UPSAMPLERS:
        return AutoGAN(name.removeprefix("autogan_"), steps=autogan_steps, width=autogan_width)
    if name in MODELS:
        return RealESRGAN(name)
    if name == TAEF2.name:
        return TAEF2(taef2_weights)
    raise ValueError(f"unknown generator {name!r}; choose from {', '.join(NAMES)}")
