"""The paper's preprocessing, in one place for scan, eval and train.

Reflect-pad 224 px on every side, crop 224 (centre at test, random in training),
resize to 256x256, normalise. The crop runs on uint8 (3, H, W) images in the CPU
stage's workers, in numpy (no torch: the base install scans without it), and gives
(3, 224, 224) windows, cheap to ship between processes; resize and normalisation run
batched in the backend (torch: ``torch_preprocess.to_model_input``). Padding is never
materialised: each window is gathered from the image with reflection indices, which
also works where the image is smaller than the pad (a 1x1 image reflects onto itself).
The gather indexes numpy arrays and torch tensors alike, so the GPU decode path crops
its device tensors with the same code.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The largest pad, crop or model input side a checkpoint may ask for (the paper's are 224, 224 and 256): a crop of
# 8000 px would cost 190 MB an image in every worker and fail mid-scan, so it is refused when the weights load.
MAX_SIDE = 512


@dataclass(frozen=True)
class Preprocessing:
    """Everything needed to turn a decoded image into model input; stored in every checkpoint."""

    pad: int = 224
    crop: int = 224
    size: int = 256
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)

    def __post_init__(self):
        # A checkpoint carries these values: refuse a bad one when it loads, not images later, mid-scan.
        for name, least in (("pad", 0), ("crop", 1), ("size", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= MAX_SIDE:
                raise ValueError(f"preprocessing {name} must be an integer from {least} to {MAX_SIDE}, not {value!r}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) != 3 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                raise ValueError(f"preprocessing {name} must be three finite numbers (R, G, B), not {values!r}")
        if not all(v > 0 for v in self.std):
            raise ValueError(f"preprocessing std must be positive (it divides), not {self.std!r}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        d = dict(d)
        d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
        return cls(**d)


def reflect_indices(length: int, start: int, count: int) -> np.ndarray:
    """Indices into an axis of ``length`` for positions start..start+count-1 of its reflect-padded version.

    Position p counts from the first original pixel (negative p lies in the left pad). Reflection
    repeats with period 2*(length-1), as np.pad(mode="reflect") does for pads wider than the image.
    """
    positions = np.arange(start, start + count)
    if length == 1:
        return np.zeros(count, dtype=np.int64)
    period = 2 * (length - 1)
    folded = positions % period  # numpy's remainder takes the divisor's sign: 0..period-1
    return np.where(folded < length, folded, period - folded)


def centre_offset(h: int, w: int, p: Preprocessing) -> tuple[int, int]:
    """(top, left) of the centre window, in padded coordinates."""
    return (h + 2 * p.pad - p.crop) // 2, (w + 2 * p.pad - p.crop) // 2


def windows(image, p: Preprocessing, offsets: Sequence[tuple[int, int]]):
    """(C, H, W) image -> (K, C, crop, crop): the windows at ``offsets`` ((top, left) in padded coordinates,
    0..H+2*pad-crop) of the image reflect-padded by ``p.pad``; a numpy array or a torch tensor (on its device),
    as ``image`` is, contiguous, never a view of the image."""
    channels, h, w = image.shape
    rows = np.stack([reflect_indices(h, top - p.pad, p.crop) for top, _ in offsets])
    cols = np.stack([reflect_indices(w, left - p.pad, p.crop) for _, left in offsets])
    # One gather for every window: (K, 1, crop, 1) rows and (K, 1, 1, crop) columns broadcast to the windows.
    return image[np.arange(channels)[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]


def crop(image, p: Preprocessing = Preprocessing(), top: int | None = None, left: int | None = None):
    """(C, H, W) image -> (C, crop, crop) window of the image reflect-padded by ``p.pad`` (numpy or torch, as
    ``image`` is).

    ``top``/``left`` are offsets in padded coordinates, 0..H+2*pad-crop; None centres the window.
    """
    _, h, w = image.shape
    centre_top, centre_left = centre_offset(h, w, p)
    return windows(image, p, [(centre_top if top is None else top, centre_left if left is None else left)])[0]
