"""The paper's training views (CNNDetection's "Blur+JPEG (0.1)" recipe, then IPD-Net's crop).

On the decoded image (``ipdscan.scanning.decode``, exactly as a scan decodes it), as CNNDetection does: Gaussian blur (sigma ~ U[0, 3]) with p = 0.1,
then JPEG re-encoding (quality ~ U{30..100}) with p = 0.1; then the paper's random crop of the
reflect-padded image (``ipdscan.model.torch_preprocess.random_crop``) and a horizontal flip with p = 0.5.
Beyond the paper, off by default: a down-scale (factor ~ U[0.5, 1], antialiased) between the blur and the JPEG
step, as images on the web are resized before they are re-saved.
The resize to the model's input size happens batched on the device (``to_model_input``).

Every random choice comes from one ``numpy.random.Generator`` per sample, seeded by
(seed, epoch, index) in the dataset, so a seed fixes every view whichever worker makes it.
The blur and JPEG operations are the ones the robustness evaluation applies.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from ipdscan.eval.perturbations import gaussian_blur, jpeg_reencode
from ipdscan.model.preprocess import Preprocessing, crop
from ipdscan.model.torch_preprocess import random_crop


@dataclass(frozen=True)
class Augmentation:
    blur_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.0, 3.0)  # uniform range
    jpeg_prob: float = 0.1
    jpeg_quality: tuple[int, int] = (30, 100)  # uniform over the integers, both ends included
    flip_prob: float = 0.5
    downscale_prob: float = 0.0  # beyond the paper
    downscale_range: tuple[float, float] = (0.5, 1.0)  # uniform range of the scale factor

    def __post_init__(self):
        lo, hi = self.downscale_range
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"downscale_range must be a range 0 < low <= high <= 1, not {self.downscale_range}")
        for name in ("blur_prob", "jpeg_prob", "flip_prob", "downscale_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1, not {getattr(self, name)}")
        lo, hi = self.blur_sigma
        if not 0 <= lo <= hi:
            raise ValueError(f"blur_sigma must be a range 0 <= low <= high, not {self.blur_sigma}")
        lo, hi = self.jpeg_quality
        if not (1 <= lo <= hi <= 100 and lo == int(lo) and hi == int(hi)):
            raise ValueError(f"jpeg_quality must be an integer range within 1..100, not {self.jpeg_quality}")


@dataclass(frozen=True)
class ViewParams:
    """One sample's draw: None means the operation is skipped."""
    blur_sigma: float | None
    jpeg_quality: int | None
    flip: bool
    downscale: float | None = None


def sample_params(aug: Augmentation, rng: np.random.Generator) -> ViewParams:
    # Each decision draws a fixed number of values, so changing one probability keeps the others' stream.
    blur, sigma = rng.random() < aug.blur_prob, float(rng.uniform(*aug.blur_sigma))
    jpeg, quality = rng.random() < aug.jpeg_prob, int(rng.integers(aug.jpeg_quality[0], aug.jpeg_quality[1] + 1))
    flip = bool(rng.random() < aug.flip_prob)
    # drawn last, so the paper's recipe (downscale_prob 0) keeps the stream it always had
    downscale, factor = rng.random() < aug.downscale_prob, float(rng.uniform(*aug.downscale_range))
    return ViewParams(sigma if blur else None, quality if jpeg else None, flip, factor if downscale else None)


def degrade(image: Image.Image, params: ViewParams) -> Image.Image:
    if params.blur_sigma is not None:
        image = gaussian_blur(image, params.blur_sigma)
    if params.downscale is not None:
        size = (max(1, round(image.width * params.downscale)), max(1, round(image.height * params.downscale)))
        image = image.resize(size, Image.Resampling.BICUBIC)
    if params.jpeg_quality is not None:
        image = jpeg_reencode(image, params.jpeg_quality)
    return image


def train_view(pixels: torch.Tensor, aug: Augmentation, preprocessing: Preprocessing,
               rng: np.random.Generator) -> torch.Tensor:
    """(3, H, W) uint8 decoded image -> (3, crop, crop) uint8: degrade, random crop of the padded image, maybe flip."""
    params = sample_params(aug, rng)
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    if params.blur_sigma is not None or params.jpeg_quality is not None or params.downscale is not None:  # PIL only when needed
        pixels = pil_to_tensor(degrade(Image.fromarray(pixels.permute(1, 2, 0).numpy()), params))
    view = random_crop(pixels, preprocessing, generator)
    return view.flip(-1) if params.flip else view


def val_view(pixels: torch.Tensor, preprocessing: Preprocessing) -> torch.Tensor:
    """The scan's view of a decoded (3, H, W) uint8 image: the centre crop, nothing random."""
    return crop(pixels, preprocessing)
