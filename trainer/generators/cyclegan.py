"""CycleGAN fakes from PyPI ``vintagify`` (MIT): a real, trained CycleGAN generator, with its weights in the wheel.

The generator (Zhu et al. 2017's ResNet generator: two stride-2 convolutions, 9 residual blocks, two
transposed-convolution up-samplings, instance norm) was trained to turn modern photos into vintage ones; its
up-sampling path leaves the traces of GAN image-to-image translation that CNNSpot's CycleGAN test set holds. Its
colour shift is removed by matching each channel to the real (``match_channels``), so only those traces remain.
Sides must be multiples of 4 (two stride-2 stages). ~3-6 s per 256 px window on 2 cores.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .colour import match_channels

WEIGHTS = "resources/G_A2B_epoch33.pth"


class CycleGAN:
    name = "cyclegan_vintagify"

    def __init__(self):
        self.net = None

    def prepare(self, train_windows: Sequence[np.ndarray], workdir: Path, seed: int) -> dict:
        try:
            import vintagify
            from vintagify.generator import ResnetGenerator
        except ImportError as e:
            raise RuntimeError(f"{self.name} needs `pip install vintagify==0.1.2`: {e}") from e
        path = Path(vintagify.__file__).parent / WEIGHTS
        self.net = ResnetGenerator().eval()
        self.net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return {"package": "vintagify", "weights": WEIGHTS, "weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}

    @torch.no_grad()
    def __call__(self, window: np.ndarray) -> np.ndarray:
        h, w = window.shape[:2]
        if h % 4 or w % 4:
            raise ValueError(f"{self.name} needs sides that are multiples of 4, got {w}x{h}")
        x = torch.from_numpy(np.array(window)).permute(2, 0, 1)[None].float().div(127.5).sub(1)
        y = self.net(x)[0].add(1).mul(127.5).permute(1, 2, 0).numpy()
        return match_channels(y, window)
