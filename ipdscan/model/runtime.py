"""Where and how the model runs: the device, the arithmetic precision, and how many decoding processes feed it.

One policy for scan, eval and train, so that they cannot drift apart:

- ``resolve_device``: "auto" is CUDA when present; anything else must exist here (DeviceError).
- ``resolve_precision``: "fp32"; "bf16" (the whole trunk); "mixed" (stem and first stage fp32, deeper stages bf16).
  On ../shared/data/dev-eval with the shipped layer2 weights, "bf16" moved one set's AP by 1.2 points (1.1 on an
  H200) and "mixed" by at most 0.3 (0.4), so "auto" picks "mixed" for layer2 where bf16 is native:
  benchmarks/RESULTS.md.
- ``default_workers``: one decoding process on the CPU, more beside a GPU.

torch is imported by the functions that need it, not here: the torch-free CPU scan asks ``default_workers`` too.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..choices import PRECISIONS

if TYPE_CHECKING:
    import torch

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # x86; elsewhere bf16 is emulated (slower than fp32)
# What "auto" picks where bf16 is native: only precisions whose dev-eval AP stayed within 0.5 points of fp32
# for that variant. Deeper trunks were not measured on trained weights (random ones drift further), so fp32.
AUTO_PRECISION = {"layer2": "mixed"}


class DeviceError(ValueError):
    """The requested device does not exist here, or cannot do what was asked."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    import torch
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
    import torch
    return torch.backends.mkldnn.is_available() and bool(cpu_flags() & NATIVE_BF16_FLAGS)


def has_native_bf16(device: torch.device) -> bool:
    import torch
    return torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()


def resolve_precision(precision: str, device: torch.device, variant: str) -> str:
    """"auto" -> the fastest precision that keeps AP within 0.5 points of float32 here."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    bf16_native = has_native_bf16(device)
    if precision == "auto":
        return AUTO_PRECISION.get(variant, "fp32") if bf16_native else "fp32"
    if precision in ("bf16", "mixed") and device.type == "cuda" and not bf16_native:
        raise DeviceError(f"{device} cannot compute in bfloat16: use --precision fp32")
    return precision


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def worker_limit() -> int:
    """The most decoding processes worth starting: one a CPU. More only compete for the CPUs (each fetches 8 URLs
    at a time already): --workers 500 started 500 of them."""
    return usable_cpus()


def default_workers(requested: int | None, device_type: str, device_decode: bool = False) -> int:
    """Decoding processes: ``requested`` (up to ``worker_limit``) when given, else what keeps the scoring device
    (``device_type``: "cpu" or "cuda") busy without starving it."""
    if requested is not None:
        return min(max(0, requested), worker_limit())
    cpus = usable_cpus()
    if device_type == "cuda":
        # Workers that only read files and parse headers need few cores; keep two for the scoring
        # process and its reader thread.
        return max(1, min(8, cpus - 2)) if device_decode else min(16, cpus)
    # On the CPU the model competes with decoding for cores: one worker keeps both busy.
    return 1 if cpus > 1 else 0
