"""What scores a scan's crops: a ``Backend``, chosen (``choose_backend``) and loaded (``load_backend``) once.

- ``torch``: ``detector.Detector``, on CUDA or the CPU, at the precision ``runtime.py`` picks; needs PyTorch
  (``pip install 'ipdscan[gpu]'``).
- ``onnxruntime``: ``onnx_backend.OnnxDetector``, on the CPU, from the ``.onnx`` file exported beside the
  weights (the shipped default has one); the base install's only backend.

``auto`` is torch on CUDA, else ONNX Runtime where it is installed and the weights have their ``.onnx`` beside
them, else torch; weights that are themselves an ``.onnx`` (an export with no checkpoint, such as
``trainer/export_probe.py``'s) score with ONNX Runtime wherever torch would be picked. Both take the CPU stage's uint8 crops as numpy arrays; their rows differ only in the score.
"""
from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Protocol

import numpy as np

from ..extras import require_torch
from .preprocess import Preprocessing
from .runtime import DeviceError
from .weights import WeightsError, default_weights_path

TORCH, ONNXRUNTIME = "torch", "onnxruntime"
CPU_DEVICES = ("auto", "cpu")  # the devices ONNX Runtime scores on here


class Backend(Protocol):
    """A loaded detector: what scores where, the weights' identity and preprocessing, and scores for uint8 crops."""

    backend: str  # TORCH or ONNXRUNTIME
    device: object  # where it scores: a torch.device, or "cpu"
    precision: str  # the model's arithmetic: fp32, mixed or bf16
    name: str  # the weights' name, e.g. ipdnet-layer2-corpus-v3
    variant: str  # layer2, layer3, layer4
    sha256: str  # of the weights file, as the report header records it
    threshold: float  # the weights' own calibrated threshold
    calibration: dict  # how that threshold was chosen (weights.Checkpoint.calibration); empty when never calibrated
    preprocessing: Preprocessing

    def score(self, crops: np.ndarray) -> np.ndarray:
        """(B, 3, crop, crop) uint8 -> (B,) float32 probabilities of AI generation."""


def onnx_beside(weights: Path) -> Path:
    """Where the weights' ONNX export lives: the same name with .onnx."""
    return weights.with_suffix(".onnx")


def importable(module: str) -> bool:
    try:
        import_module(module)
    except ImportError:
        return False
    return True


def choose_backend(requested: str, device: str, weights: Path) -> str:
    """"torch" or "onnxruntime" for ``requested`` (auto, torch, onnxruntime) on ``device`` (--device)."""
    if requested != "auto":
        return requested
    if weights.suffix.lower() == ".onnx":
        return ONNXRUNTIME  # no checkpoint for torch to read
    if device not in CPU_DEVICES:
        return TORCH  # cuda or cuda:N; anything else, torch's resolve_device explains
    if device == "auto" and importable("torch") and import_module("torch").cuda.is_available():
        return TORCH
    return ONNXRUNTIME if importable("onnxruntime") and onnx_beside(weights).is_file() else TORCH


def load_backend(weights: str | Path | None = None, device: str = "auto", precision: str = "auto",
                 backend: str = "auto") -> Backend:
    """Load the weights (the shipped default when None) into the backend ``choose_backend`` picks. Raises
    WeightsError, DeviceError, MissingExtra (torch needed but not installed) or ValueError."""
    path = Path(weights) if weights is not None else default_weights_path()
    chosen = choose_backend(backend, str(device), path)
    if chosen == ONNXRUNTIME:
        onnx = onnx_beside(path)
        if str(device) not in CPU_DEVICES:
            torch_instead = "" if path.suffix.lower() == ".onnx" else ", or --backend torch"
            raise DeviceError(f"--backend onnxruntime scores on the CPU, not {device}: use --device cpu{torch_instead}")
        if precision not in ("auto", "fp32"):
            raise ValueError(f"--precision {precision} is the torch backend's: ONNX Runtime scores in fp32")
        if not onnx.is_file():
            raise WeightsError(f"no ONNX model beside the weights: {onnx} does not exist "
                               "(use --backend torch, or export one beside them)")
        if not importable("onnxruntime"):
            raise ValueError("--backend onnxruntime needs ONNX Runtime, which is not installed: pip install onnxruntime")
        from .onnx_backend import load_onnx_detector
        return load_onnx_detector(onnx)
    if path.suffix.lower() == ".onnx":
        raise WeightsError(f"{path} is an ONNX export: the torch backend reads checkpoints (.pt); "
                           "use --backend onnxruntime")
    if backend == TORCH:
        require_torch("scan --backend torch", "gpu")
    elif str(device) not in CPU_DEVICES:
        require_torch(f"scan --device {device}", "gpu")
    else:
        require_torch("scan", "gpu", f" for weights without {onnx_beside(path).name} beside them")
    from .detector import load_detector
    return load_detector(path, device, precision)

