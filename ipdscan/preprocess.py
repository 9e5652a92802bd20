"""The paper's preprocessing, in one place for scan, eval and train.

Reflect-pad 224 px on every side, crop 224 (centre at test, random in training),
resize to 256x256, normalise. The crop runs on uint8 (B, 3, 224, 224) tensors in
data-loader workers, cheap to ship between processes; resize and normalisation run
batched on the scoring device (`to_model_input`). Padding is never materialised:
the crop window is mapped back into the image with reflection indices, which also
works where the image is smaller than the pad (a 1x1 image reflects onto itself).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

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
    def from_dict(cls, d: dict) -> "Preprocessing":
        d = dict(d)
        d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
        return cls(**d)


def reflect_indices(length: int, start: int, count: int) -> torch.Tensor:
    """Indices into an axis of ``length`` for positions start..start+count-1 of its reflect-padded version.

    Position p counts from the first original pixel (negative p lies in the left pad). Reflection
    repeats with period 2*(length-1), as np.pad(mode="reflect") does for pads wider than the image.
    """
    positions = torch.arange(start, start + count)
    if length == 1:
        return torch.zeros(count, dtype=torch.long)
    period = 2 * (length - 1)
    folded = positions.remainder(period)
    return torch.where(folded < length, folded, period - folded)


def crop(image: torch.Tensor, p: Preprocessing = Preprocessing(), top: int | None = None, left: int | None = None) -> torch.Tensor:
    """(C, H, W) image -> (C, crop, crop) window of the image reflect-padded by ``p.pad``.

    ``top``/``left`` are offsets in padded coordinates, 0..H+2*pad-crop; None centres the window.
    """
    _, h, w = image.shape
    top = (h + 2 * p.pad - p.crop) // 2 if top is None else top
    left = (w + 2 * p.pad - p.crop) // 2 if left is None else left
    row, col = top - p.pad, left - p.pad  # in image coordinates
    if 0 <= row <= h - p.crop and 0 <= col <= w - p.crop:  # inside the image: no reflection, a plain copy
        return image[:, row:row + p.crop, col:col + p.crop].clone()
    rows = reflect_indices(h, top - p.pad, p.crop).to(image.device)
    cols = reflect_indices(w, left - p.pad, p.crop).to(image.device)
    return image.index_select(1, rows).index_select(2, cols)


def random_crop(image: torch.Tensor, p: Preprocessing = Preprocessing(), generator: torch.Generator | None = None) -> torch.Tensor:
    """The training crop: a uniformly random window of the reflect-padded image."""
    _, h, w = image.shape
    top = int(torch.randint(0, h + 2 * p.pad - p.crop + 1, (1,), generator=generator))
    left = int(torch.randint(0, w + 2 * p.pad - p.crop + 1, (1,), generator=generator))
    return crop(image, p, top, left)


def to_model_input(batch: torch.Tensor, p: Preprocessing = Preprocessing()) -> torch.Tensor:
    """(B, 3, crop, crop) uint8 -> (B, 3, size, size) float32, resized (bilinear) and normalised."""
    x = batch.float().div_(255)
    if x.shape[-1] != p.size or x.shape[-2] != p.size:
        x = F.interpolate(x, size=(p.size, p.size), mode="bilinear", align_corners=False)
    mean = torch.tensor(p.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(p.std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std
