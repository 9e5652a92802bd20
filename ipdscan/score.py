"""The scoring stage: a loaded detector on a device turns uint8 crops into P(AI-generated).

``Detector.score`` runs an inference form of IPD-Net that computes the same logits as ``model(x)``
with less work: BatchNorm folded into the convs, the (HW, HW) dependency matrix never formed (see
``pooled_dependencies``), and, where the hardware does bfloat16 natively, the deeper trunk stages in bf16.
The SRM high-pass and the head always run in float32: the SRM subtracts neighbouring pixels, and in
bf16 (8 significant bits) that difference is mostly rounding error, which wrecks the ranking.

Precisions: "fp32"; "bf16" (the whole trunk); "mixed" (stem and first stage fp32, deeper stages bf16).
On ../shared/data/dev-eval with the shipped layer2 weights, "bf16" moved one set's AP by 1.2 points (1.1 on
an H200) and "mixed" by at most 0.3 (0.4), so "auto" picks "mixed" for layer2: benchmarks/RESULTS.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse as fold_batchnorm

from .model import InterPatchDependency
from .preprocess import to_model_input
from .weights import Checkpoint, WeightsError, default_weights_path, load_checkpoint


PRECISIONS = ("auto", "fp32", "bf16", "mixed")
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # x86; elsewhere bf16 is emulated (slower than fp32)
# What "auto" picks where bf16 is native: only precisions whose dev-eval AP stayed within 0.5 points of fp32
# for that variant. Deeper trunks were not measured on trained weights (random ones drift further), so fp32.
AUTO_PRECISION = {"layer2": "mixed"}
FP32_STAGES = 1  # "mixed": residual stages kept in fp32 after the stem, where the SRM residuals are still raw
# Images per model call on the CPU, by precision: the activations of a few images stay in cache, and a
# 32-image batch ran 2.3x faster as calls of 4 in bf16, or of 2 in fp32 (twice the bytes per image); see
# benchmarks/RESULTS.md. GPUs take the whole batch in one call.
CPU_MICRO_BATCH = {"bf16": 4, "mixed": 2, "fp32": 2}


class DeviceError(ValueError):
    """The requested device does not exist here, or cannot do what was asked."""


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags Linux reports; empty where /proc/cpuinfo does not exist."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16() -> bool:
    return torch.backends.mkldnn.is_available() and bool(cpu_flags() & NATIVE_BF16_FLAGS)


def resolve_precision(precision: str, device: torch.device, variant: str) -> str:
    """"auto" -> the fastest precision that keeps AP within 0.5 points of float32 here."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    bf16_native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()
    if precision == "auto":
        return AUTO_PRECISION.get(variant, "fp32") if bf16_native else "fp32"
    if precision in ("bf16", "mixed") and device.type == "cuda" and not bf16_native:
        raise DeviceError(f"{device} cannot compute in bfloat16: use --precision fp32")
    return precision


def pooled_dependencies(dependency: InterPatchDependency, features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) trunk features -> (B, HW): the head's average-pooled dependency matrix, without forming it.

    The head averages D[i, j] = <q_i, k_j> over i, which is <mean_i q_i, k_j>; q is a 1x1 conv, so
    mean_i q_i is that conv applied to the mean feature, and <q, Wk x_j + bk> = <Wk^T q, x_j> + <q, bk>.
    O(HW * C) instead of O(HW^2 * C): for layer2 this is a quarter of the whole network's arithmetic.
    """
    x = features.flatten(2)  # (B, C, HW)
    q = nn.functional.linear(x.mean(2), dependency.query.weight.flatten(1), dependency.query.bias)  # (B, C/2)
    key_weight, key_bias = dependency.key.weight.flatten(1), dependency.key.bias  # (C/2, C), (C/2,)
    return ((q @ key_weight).unsqueeze(1) @ x).squeeze(1) + (q @ key_bias).unsqueeze(1)


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
    precision: str = "auto"  # one of PRECISIONS; "auto" is resolved on creation

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

    @torch.inference_mode()
    def score(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, 3, crop, crop) uint8 -> (B,) float32 probabilities on the CPU."""
        if crops.numel() == 0:
            return torch.empty(0)
        step = CPU_MICRO_BATCH[self.precision] if self.device.type == "cpu" else len(crops)
        return torch.cat([self._score(part) for part in crops.split(step)])

    def _score(self, crops: torch.Tensor) -> torch.Tensor:
        x = to_model_input(crops.to(self.device, non_blocking=True), self.preprocessing)
        return torch.sigmoid(self.logits(x)).cpu()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised float32 -> (B,) float32 logits, as ``self.model(x)`` computes them."""
        features = self.model.srm(x.contiguous(memory_format=torch.channels_last))
        for index, stage in enumerate(self.stages):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=index >= self.fp32_stages):
                features = stage(features)
        return self.model.head.classifier(pooled_dependencies(self.model.dependency, features.float())).squeeze(1)


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


__all__ = ["PRECISIONS", "Detector", "DeviceError", "WeightsError", "load_detector", "resolve_device",
           "resolve_precision"]
