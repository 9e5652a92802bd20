"""Local fakes (B-Free's "content augmentation", Guillaro et al., CVPR 2025): a real photo in which only a
masked region comes from the generator.

A detector trained on whole-image fakes can learn global statistics (colour, overall sharpness) instead of
the generator's traces; when only a region differs from the real, with the rest of the pixels identical,
the traces are all that is left to learn. The region is a rectangle or a soft-edged blob covering 10-50% of
the window, drawn from the pair's own seed.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

AREA = (0.10, 0.50)
PREFIX = "local_"  # a local fake's generator folder: local_<generator>


def mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W) float mask in [0, 1]: 1 where the fake shows. A fixed number of draws whatever the shape."""
    h, w = shape
    area, aspect, cy, cx = rng.uniform(*AREA), np.exp(rng.uniform(-0.7, 0.7)), rng.random(), rng.random()
    blob, softness = rng.random() < 0.5, rng.uniform(2, 8)
    if blob:  # an ellipse of that area (pi/4 of its bounding box), edges blurred
        bh, bw = np.sqrt(area * h * w * 4 / np.pi / aspect), np.sqrt(area * h * w * 4 / np.pi * aspect)
    else:
        bh, bw = np.sqrt(area * h * w / aspect), np.sqrt(area * h * w * aspect)
    bh, bw = min(bh, h), min(bw, w)
    top, left = cy * (h - bh), cx * (w - bw)
    canvas = Image.new("L", (w, h), 0)
    box = (left, top, left + bw - 1, top + bh - 1)
    if blob:
        ImageDraw.Draw(canvas).ellipse(box, fill=255)
        canvas = canvas.filter(ImageFilter.GaussianBlur(softness))
    else:
        ImageDraw.Draw(canvas).rectangle(box, fill=255)
    return np.asarray(canvas, dtype=np.float64) / 255


def paste(real: np.ndarray, fake: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The real with a masked region of the fake; and the share of the window the fake covers."""
    m = mask(real.shape[:2], rng)[..., None]
    out = np.round(real * (1 - m) + fake * m).astype(np.uint8)
    return out, round(float(m.mean()), 3)
