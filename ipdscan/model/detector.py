"""The torch backend (``backends.py``): a loaded detector on a device turns uint8 crops into P(AI-generated).

``Detector.score`` runs ``IPDNet.forward_pooled`` (the same logits as ``model(x)``, less work) on copies of the
trunk with BatchNorm folded into the convs, and, at the precision ``runtime.resolve_precision`` chose, the
deeper trunk stages in bf16. Precisions: "fp32"; "bf16" (the whole trunk); "mixed" (stem and first stage
fp32, deeper stages bf16).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.fx.experimental.optimization import fuse as fold_batchnorm

from .runtime import resolve_device, resolve_precision
from .torch_preprocess import to_model_input
from .weights import Checkpoint, default_weights_path, load_checkpoint

FP32_STAGES = 1  # "mixed": residual stages kept in fp32 after the stem, where the SRM residuals are still raw
# Images per model call on the CPU, by precision: the activations of a few images stay in cache, and a
# 32-image batch ran 2.3x faster as calls of 4 in bf16, or of 2 in fp32 (twice the bytes per image); see
# benchmarks/RESULTS.md. GPUs take the whole batch in one call.
CPU_MICRO_BATCH = {"bf16": 4, "mixed": 2, "fp32": 2}


@dataclass
class Detector:
    checkpoint: Checkpoint
    device: torch.device
    precision: str = "auto"  # one of runtime.PRECISIONS; "auto" is resolved on creation
    backend = "torch"  # backends.TORCH: what scored, as the report header records it

    def __post_init__(self):
        self.precision = resolve_precision(self.precision, self.device, self.checkpoint.config.variant)
        # channels_last lets cuDNN / oneDNN pick their fastest convolution kernels for the trunk.
        self.model = self.checkpoint.model.to(self.device, memory_format=torch.channels_last).eval()
        trunk = self.model.trunk  # folded copies: self.model stays the reference IPD-Net
        self.stages = [fold_batchnorm(trunk.stem), *(fold_batchnorm(stage) for stage in trunk.stages)]
        self.fp32_stages = {"fp32": len(self.stages), "mixed": 1 + FP32_STAGES, "bf16": 0}[self.precision]
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # one input shape for the whole scan: worth timing kernels once

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

    @property
    def threshold(self) -> float:
        """The weights' own calibrated threshold (0.5 for an uncalibrated checkpoint)."""
        return self.checkpoint.threshold

    @property
    def calibration(self) -> dict:
        return self.checkpoint.calibration

    @torch.inference_mode()
    def score(self, crops: np.ndarray | torch.Tensor) -> np.ndarray:
        """(B, 3, crop, crop) uint8 (a numpy array, or a tensor on any device) -> (B,) float32 probabilities."""
        crops = torch.as_tensor(crops)  # a numpy array's memory, not a copy
        if crops.numel() == 0:
            return np.empty(0, np.float32)
        step = CPU_MICRO_BATCH[self.precision] if self.device.type == "cpu" else len(crops)
        return torch.cat([self._score(part) for part in crops.split(step)]).numpy()

    def _score(self, crops: torch.Tensor) -> torch.Tensor:
        x = to_model_input(crops.to(self.device, non_blocking=True), self.preprocessing)
        return torch.sigmoid(self.logits(x)).cpu()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised float32 -> (B,) float32 logits, as ``self.model(x)`` computes them."""
        return self.model.forward_pooled(x.contiguous(memory_format=torch.channels_last), self.stages,
                                         bf16_from=self.fp32_stages)


def load_detector(weights: str | Path | None = None, device: str | torch.device = "auto",
                  precision: str = "auto") -> Detector:
    """Load a checkpoint (the shipped default when ``weights`` is None) onto ``device``.

    ``precision``: "auto" (the variant's AUTO_PRECISION where the device computes bf16 natively, else fp32),
    "fp32", "bf16" or "mixed". Raises WeightsError (missing, corrupt, tampered or mismatched file), DeviceError,
    or ValueError (an unknown precision).
    """
    target = resolve_device(device)
    path = Path(weights) if weights is not None else default_weights_path()
    return Detector(load_checkpoint(path), target, precision)

