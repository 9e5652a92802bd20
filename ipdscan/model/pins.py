"""The shipped default weights, pinned by sha256 (torchvision style): the ``.pt`` and its ONNX export. Imports
nothing heavy, so ``ipdscan --version`` can name them without loading numpy or the CLI."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WeightsEntry:
    file: str
    sha256: str


# The default detector shipped in weights/ (see weights/MODEL_CARD.md). Empty until one is trained.
DEFAULT_WEIGHTS: WeightsEntry | None = WeightsEntry("ipdnet-layer2-corpus-v3.pt", "419f661a5383f3c1705a2b1ec192074b79e6b09b636bb771ce38a3c776037f2c")
# Its ONNX export (beside it, the same stem), pinned as it is.
DEFAULT_ONNX = WeightsEntry("ipdnet-layer2-corpus-v3.onnx", "8ceaa5a1867bf01cb4cbd264c45df9b37abc50290062598fb34fcca9cffc281a")
