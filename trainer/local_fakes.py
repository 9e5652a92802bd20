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
    height, width = shape
    area, aspect, centre_y, centre_x = rng.uniform(*AREA), np.exp(rng.uniform(-0.7, 0.7)), rng.random(), rng.random()
    blob, softness = rng.random() < 0.5, rng.uniform(2, 8)
    if blob:  # an ellipse of that area (pi/4 of its bounding box), edges blurred
        box_height, box_width = np.sqrt(area * height * width * 4 / np.pi / aspect), np.sqrt(area * height * width * 4 / np.pi * aspect)
    else:
        box_height, box_width = np.sqrt(area * height * width / aspect), np.sqrt(area * height * width * aspect)
    box_height, box_width = min(box_height, height), min(box_width, width)
    top, left = centre_y * (height - box_height), centre_x * (width - box_width)
    canvas = Image.new("L", (width, height), 0)
    box = (left, top, left + box_width - 1, top + box_height - 1)
    if blob:
        ImageDraw.Draw(canvas).ellipse(box, fill=255)
        canvas = canvas.filter(ImageFilter.GaussianBlur(softness))
    else:
        ImageDraw.Draw(canvas).rectangle(box, fill=255)
    return np.asarray(canvas, dtype=np.float64) / 255


def paste(real: np.ndarray, fake: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The real with a masked region of the fake; and the share of the window the fake covers."""
    shown = mask(real.shape[:2], rng)[..., None]
    out = np.round(real * (1 - shown) + fake * shown).astype(np.uint8)
    return out, round(float(shown.mean()), 3)
