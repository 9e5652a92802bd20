"""Shortcut checks (issue 31, item 4): does a detector read processing history instead of generator traces?

Each check processes only one class of a labelled set and measures how far that class's mean score moves: one
JPEG pass (q 75-95), a slight blur (sigma 0.5-1), a 0.5x down-and-up resize, and half resolution (0.5x, not
restored). A detector that learned "smooth means fake" or "one JPEG pass means real" moves here, whatever its
AP; the target is |shift| < 0.05 for every check and both classes. Any detector fits: it is a function from
(H, W, 3) uint8 images to scores, so IPD-Net checkpoints (``trainer.check_default``), the probe
(``trainer.probe``) and an ensemble are checked by the same code.
"""
from __future__ import annotations

import io
import random
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageFilter

from ipdscan.eval.labelled import find_generators
from trainer.feature_cache import hwc_pixels

SHIFT_LIMIT = 0.05
Scorer = Callable[[list[np.ndarray]], np.ndarray]  # (H, W, 3) uint8 images -> scores


def jpeg_pass(image: Image.Image, rng: random.Random) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=rng.randint(75, 95))
    return Image.open(buffer).convert("RGB")


def blurred(image: Image.Image, rng: random.Random) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.0)))


def down_up(image: Image.Image, rng: random.Random) -> Image.Image:
    half = (max(1, image.width // 2), max(1, image.height // 2))
    return image.resize(half, Image.BILINEAR).resize(image.size, Image.BILINEAR)


def half_resolution(image: Image.Image, rng: random.Random) -> Image.Image:
    return image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.LANCZOS)


PROCESSING = {"jpeg q75-95": jpeg_pass, "blur sigma 0.5-1": blurred, "0.5x down-up": down_up,
              "0.5x resolution": half_resolution}


def shortcut_shifts(score: Scorer, images: Sequence[np.ndarray], labels: Sequence[int],
                    seed: int = 0) -> dict[tuple[str, str], float]:
    """{(processing, "real" | "fake"): mean score of that class processed - its mean score as it is}."""
    labels = np.asarray(labels)
    baseline = score(list(images))
    shifts = {}
    for index, (name, process) in enumerate(PROCESSING.items()):
        rng = random.Random(f"{seed}-{index}")
        processed = score([np.asarray(process(Image.fromarray(image), rng)) for image in images])
        for label, kind in ((0, "real"), (1, "fake")):
            chosen = labels == label
            shifts[(name, kind)] = float(processed[chosen].mean() - baseline[chosen].mean())
    return shifts


def shifts_markdown(shifts: dict[tuple[str, str], float], counts: tuple[int, int]) -> list[str]:
    """A table of the shifts, reals and fakes side by side, each marked pass or FAIL against SHIFT_LIMIT."""
    def cell(value: float) -> str:
        return f"{value:+.4f} {'pass' if abs(value) < SHIFT_LIMIT else 'FAIL'}"
    lines = [f"Mean score shift when only one class is processed ({counts[0]} reals, {counts[1]} fakes; "
             f"target |shift| < {SHIFT_LIMIT}):", "",
             "| processing | reals only | fakes only |", "|---|---:|---:|"]
    lines += [f"| {name} | {cell(shifts[(name, 'real')])} | {cell(shifts[(name, 'fake')])} |" for name in PROCESSING]
    return lines


def balanced_sample(roots: Sequence[str], per_class: int, seed: int = 0) -> tuple[list[np.ndarray], list[int]]:
    """Up to ``per_class`` reals and fakes of every generator below the labelled ``roots``, seeded, as decoded
    (H, W, 3) images and labels: a check that costs minutes, not an hour."""
    rng = random.Random(seed)
    images, labels = [], []
    for generator in find_generators(roots):
        for label, paths in ((0, generator.real_paths), (1, generator.fake_paths)):
            for path in rng.sample(sorted(paths), min(per_class, len(paths))):
                images.append(hwc_pixels(path))
                labels.append(label)
    return images, labels
