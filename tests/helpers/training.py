"""Small training runs for the CPU: a tiny labelled data set and a TrainConfig sized for it.

    SMALL                                   Preprocessing for 32x32 inputs
    write_textures(root, n, size=64, seed=0) n real/fake texture pairs under root/0_real, root/1_fake -> root
    small_config(root, out, **overrides)    a TrainConfig training on ``root`` into ``out`` with SMALL
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from ipdscan.model.preprocess import Preprocessing
from ipdscan.train import TrainConfig

SMALL = Preprocessing(pad=32, crop=32, size=32)  # layer2 sees 4x4 patches: a real IPD-Net, small enough for a CPU test


def write_textures(root: Path, n: int, size: int = 64, seed: int = 0) -> Path:
    """Smooth random textures as real; the same textures down-sampled x2 and nearest up-sampled x2 as fake.

    Both are stored as PNG, so only the up-sampler's pixel-grid trace tells them apart.
    """
    rng = np.random.default_rng(seed)
    for folder in ("0_real", "1_fake"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        noise = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        real = Image.fromarray(noise).filter(ImageFilter.GaussianBlur(2))
        fake = real.resize((size // 2, size // 2), Image.Resampling.BILINEAR).resize((size, size), Image.Resampling.NEAREST)
        real.save(root / "0_real" / f"{i:03d}.png")
        fake.save(root / "1_fake" / f"{i:03d}.png")
    return root


def small_config(root, out, **overrides) -> TrainConfig:
    settings = dict(roots=[str(root)], out=str(out), batch_size=4, workers=0, val_split=0.25, log_every=1,
                    progress=False, preprocessing=SMALL, seed=3)
    return TrainConfig(**{**settings, **overrides})
