"""The preprocessing's torch half, for the torch backend and training only (the CPU stage crops in numpy,
``preprocess.py``): the training crop and the batched resize and normalisation on the model's device."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .preprocess import Preprocessing, crop


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
