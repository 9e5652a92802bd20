"""The super-resolution families' recipe: down-sample a real window, let the network up-sample it back.

The fake has the real's content and layout, and every pixel comes out of the network's up-sampling path. The
small image is ``ceil(side / scale)`` so that any scale covers the window; the network's output is cropped to
the window (cropping keeps its pixel grid; resizing would add a trace of its own).
"""
from __future__ import annotations

import importlib
import math
from collections.abc import Callable

import numpy as np
from PIL import Image

# An up-sampler whose output is this far from the real is broken, not a fake (waifu2x's cunet on some CPUs):
# working ones measure 17-35 dB on 256 px photo windows (x4 on fine texture is the low end).
MIN_PSNR_DB = 12.0


NCNN_SYSTEM_PACKAGES = "libvulkan1 and libomp5"  # Debian's: what the ncnn wheels' native modules link


def ncnn_upsampler(module: str, attribute: str, package: str, name: str):
    """The up-sampler class of an ncnn wheel; RuntimeError saying what is missing, the wheel or the system
    libraries its native module links (a fresh machine has the wheel from the test extra, not those)."""
    try:
        return getattr(importlib.import_module(module), attribute)
    except ModuleNotFoundError as e:
        raise RuntimeError(f"{name} needs `pip install {package}`: {e}") from e
    except ImportError as e:  # the wheel is there, its native module is not loadable
        raise RuntimeError(f"{name} needs Debian's {NCNN_SYSTEM_PACKAGES} (apt-get install libvulkan1 libomp5; "
                           f".ci/run installs them): {e}") from e


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255 ** 2 / mse))


def down_up(window: np.ndarray, scale: int, upsample: Callable[[Image.Image], Image.Image], name: str) -> np.ndarray:
    """(H, W, 3) uint8 -> its fake, the same shape. Raises ValueError when the network's output is unusable."""
    h, w = window.shape[:2]
    small = Image.fromarray(window).resize((math.ceil(w / scale), math.ceil(h / scale)), Image.Resampling.BICUBIC)
    out = np.asarray(upsample(small).convert("RGB"))
    if out.shape[0] < h or out.shape[1] < w:
        raise ValueError(f"{name} returned {out.shape[1]}x{out.shape[0]} for a {w}x{h} window")
    fake = np.ascontiguousarray(out[:h, :w])
    quality = psnr(window, fake)
    if quality < MIN_PSNR_DB:
        raise ValueError(f"{name} output is broken: {quality:.1f} dB from its real (expected >= {MIN_PSNR_DB:g})")
    return fake
