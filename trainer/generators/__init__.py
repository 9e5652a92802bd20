"""Generators that turn a real 256x256 RGB window into a content-matched fake.

Each has a ``name``, ``prepare(train_windows, workdir, seed) -> info dict`` (train or load; may raise
RuntimeError when it cannot run here) and ``__call__(window uint8 HxWx3) -> fake uint8 HxWx3``.
"""
from __future__ import annotations

from .autogan import UPSAMPLERS, AutoGAN
from .realesrgan import MODELS, RealESRGAN

NAMES = tuple(f"autogan_{u}" for u in UPSAMPLERS) + tuple(MODELS)


def make(name: str, autogan_steps: int = 300, autogan_width: int = 32):
    if name.startswith("autogan_") and name.removeprefix("autogan_") in UPSAMPLERS:
        return AutoGAN(name.removeprefix("autogan_"), steps=autogan_steps, width=autogan_width)
    if name in MODELS:
        return RealESRGAN(name)
    raise ValueError(f"unknown generator {name!r}; choose from {', '.join(NAMES)}")
