"""The scoring stage: a loaded detector on a device turns uint8 crops into P(AI-generated)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .preprocess import to_model_input
from .weights import Checkpoint, WeightsError, default_weights_path, load_checkpoint


class DeviceError(ValueError):
    """The requested device does not exist here."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise DeviceError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if resolved.type not in ("cpu", "cuda"):
        raise DeviceError(f"unsupported device {device!r}: use auto, cpu, cuda or cuda:N")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} requested but CUDA is not available here: use --device cpu")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return resolved


@dataclass
class Detector:
    checkpoint: Checkpoint
    device: torch.device

    def __post_init__(self):
        # channels_last lets cuDNN / oneDNN pick their fastest convolution kernels for the trunk.
        self.model = self.checkpoint.model.to(self.device, memory_format=torch.channels_last).eval()

    @property
    def preprocessing(self):
        return self.checkpoint.preprocessing

    @property
    def name(self) -> str:
        return self.checkpoint.name

    @property
    def variant(self) -> str:
        return self.checkpoint.config.variant

    @property
    def sha256(self) -> str:
        return self.checkpoint.sha256

    @torch.inference_mode()
    def score(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, 3, crop, crop) uint8 -> (B,) float32 probabilities on the CPU."""
        if crops.numel() == 0:
            return torch.empty(0)
        x = to_model_input(crops.to(self.device, non_blocking=True), self.preprocessing)
        x = x.contiguous(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = self.model(x)
        else:
            logits = self.model(x)
        return torch.sigmoid(logits.float()).cpu()


def load_detector(weights: str | Path | None = None, device: str | torch.device = "auto") -> Detector:
    """Load a checkpoint (the shipped default when ``weights`` is None) onto ``device``.

    Raises WeightsError (missing, corrupt, tampered or mismatched file) or DeviceError.
    """
    target = resolve_device(device)
    path = Path(weights) if weights is not None else default_weights_path()
    return Detector(load_checkpoint(path), target)


__all__ = ["Detector", "DeviceError", "WeightsError", "load_detector", "resolve_device"]
