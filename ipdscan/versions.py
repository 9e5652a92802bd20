"""What ``ipdscan --version`` prints: this version first, then what a bug report needs (torch and CUDA where torch
is installed, ONNX Runtime, the default weights' pin). Light on purpose: ``entry.main`` answers a bare
``--version`` from here without importing the CLI."""
from __future__ import annotations

from . import __version__


def print_versions() -> None:
    print(f"ipdscan {__version__}", flush=True)  # at once: the rest may take importing torch
    from importlib.metadata import PackageNotFoundError, version

    from .model.pins import DEFAULT_WEIGHTS
    try:
        onnxruntime = f"onnxruntime {version('onnxruntime')}"
    except PackageNotFoundError:
        onnxruntime = "onnxruntime not installed"
    try:
        import torch
        print(f"torch {torch.__version__}, CUDA {'available' if torch.cuda.is_available() else 'not available'}; "
              f"{onnxruntime}")
    except ImportError:
        print(f"torch not installed, CUDA not available; {onnxruntime}")
    if DEFAULT_WEIGHTS:
        print(f"default weights {DEFAULT_WEIGHTS.file} sha256 {DEFAULT_WEIGHTS.sha256}")
