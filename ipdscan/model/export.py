"""``ipdscan export``: a checkpoint -> the ONNX model the torch-free backend scores with (``onnx_backend.py``).

The graph is ``ScoringGraph``: uint8 crops (B, 3, crop, crop) in, probabilities (B,) out, with the model-input
conversion (``torch_preprocess.to_model_input``: to float, /255, resize, normalise) and the sigmoid inside, so
the two backends cannot preprocess differently. The batch axis is dynamic. The metadata copies the checkpoint's
fields (``onnx_backend.METADATA_KEYS``) and the hashes of the ``.pt``. An export is checked before it is written:
the torch backend (``score.Detector``, fp32) and ONNX Runtime score the same crops, and a difference above
``MAX_DIFFERENCE`` refuses it.
"""
from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from ..reports.publish import overwritten_input, write_atomically
from .backends import onnx_beside
from .detector import Detector
from .onnx_backend import INPUT_NAME, ONNX_FORMAT, ONNX_FORMAT_VERSION, OUTPUT_NAME, OnnxDetector, opened
from .preprocess import Preprocessing
from .torch_preprocess import to_model_input
from .weights import Checkpoint, bytes_sha256, load_checkpoint, sidecar

# The legacy (TorchScript) exporter: it writes opset 17 as asked; the torch.export-based one builds opset 18 and
# fails to convert this graph down to 17 (onnx's version converter trips on a reduction's axes), and needs onnxscript.
OPSET = 17
MAX_DIFFERENCE = 1e-3  # largest |probability difference| between the backends that an export may show
CHECK_CROPS = 16


class ExportError(Exception):
    """An export that cannot be made or does not score as its checkpoint does; the message says why."""


class ScoringGraph(nn.Module):
    """What the ONNX file computes: uint8 crops -> P(AI-generated), the torch backend's path in fp32."""

    def __init__(self, checkpoint: Checkpoint):
        super().__init__()
        self.model, self.preprocessing = checkpoint.model.eval(), checkpoint.preprocessing

    def forward(self, crops: torch.Tensor) -> torch.Tensor:  # (B, 3, crop, crop) uint8 -> (B,) float32
        return torch.sigmoid(self.model.forward_pooled(to_model_input(crops, self.preprocessing)))


@dataclass
class Exported:
    path: Path
    sha256: str
    max_difference: float  # |ONNX Runtime - torch| over the check crops
    crops: int


def onnx_metadata(checkpoint: Checkpoint) -> dict:
    """The checkpoint's fields a scan needs, under ``onnx_backend.METADATA_KEYS``."""
    return {"format": ONNX_FORMAT, "format_version": ONNX_FORMAT_VERSION, "name": checkpoint.name,
            "config": checkpoint.config.to_dict(), "preprocessing": checkpoint.preprocessing.to_dict(),
            "provenance": checkpoint.provenance, "calibration": checkpoint.calibration, "threshold": checkpoint.threshold,
            "source_sha256": checkpoint.sha256, "source_content_sha256": checkpoint.meta["content_sha256"]}


def graph_bytes(graph: nn.Module, crop: int, metadata: dict) -> bytes:
    """``graph`` (uint8 crops (B, 3, crop, crop) -> probabilities (B,)) as a serialised ONNX model with a dynamic
    batch axis, each metadata value JSON-encoded (ONNX metadata values are strings)."""
    example = torch.zeros(2, 3, crop, crop, dtype=torch.uint8)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The legacy exporter's deprecation notice, and the tracer's note that the preprocessing's constants
        # (mean, std, the resize decision) become constants of the graph: they are, by design.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(graph, (example,), buffer, opset_version=OPSET, dynamo=False,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    model = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(model, {key: json.dumps(value, sort_keys=True, default=str)
                                        for key, value in metadata.items()})
    return model.SerializeToString()


def onnx_bytes(checkpoint: Checkpoint) -> bytes:
    """The checkpoint's ``ScoringGraph`` as a serialised ONNX model, metadata included."""
    return graph_bytes(ScoringGraph(checkpoint), checkpoint.preprocessing.crop, onnx_metadata(checkpoint))


def check_crops(preprocessing: Preprocessing, count: int = CHECK_CROPS, seed: int = 0) -> np.ndarray:
    """Seeded photo-like uint8 crops: blocky colour fields with mild noise. Uniform noise alone saturates the
    sigmoid (every score ~0), where any two backends agree; these land across the score range."""
    rng = np.random.default_rng(seed)
    side, cell = preprocessing.crop, 16
    blocks = rng.integers(40, 216, (count, 3, -(-side // cell), -(-side // cell))).astype(np.float32)
    fields = blocks.repeat(cell, axis=2).repeat(cell, axis=3)[:, :, :side, :side]
    return np.clip(fields + rng.normal(0, 4, fields.shape), 0, 255).astype(np.uint8)


def largest_difference(checkpoint: Checkpoint, exported: OnnxDetector, crops: np.ndarray) -> float:
    """max |score difference| between the torch backend (fp32) and ``exported`` on ``crops``."""
    reference = Detector(checkpoint, torch.device("cpu"), "fp32").score(crops)
    return float(np.abs(exported.score(crops).astype(np.float64) - reference).max())


def export_onnx(checkpoint_path: str | Path, out: str | Path | None = None) -> Exported:
    """Export, check and write ``out`` (default: beside the checkpoint, ``.onnx``) and its ``.sha256``.
    Raises WeightsError (not a usable checkpoint) or ExportError (cannot be written, or scores differently)."""
    checkpoint_path = Path(checkpoint_path)
    checkpoint = load_checkpoint(checkpoint_path)
    out = Path(out) if out is not None else onnx_beside(checkpoint_path)
    if out.is_dir() or not out.parent.is_dir():
        raise ExportError(f"cannot write {out}: {'it is a folder' if out.is_dir() else 'no such folder'}")
    if overwritten_input(out, [checkpoint_path]) is not None:  # by device and inode: a link is the same file
        raise ExportError(f"--out {out} is the checkpoint itself: name another file")
    data = onnx_bytes(checkpoint)
    exported = opened(data, bytes_sha256(data), out)  # read back as a scan reads it: metadata checked too
    crops = check_crops(checkpoint.preprocessing)
    difference = largest_difference(checkpoint, exported, crops)
    if not difference <= MAX_DIFFERENCE:  # NaN fails too
        raise ExportError(f"the ONNX export of {checkpoint_path} scores differently from it: max |difference| "
                          f"{difference:.2e} > {MAX_DIFFERENCE:g} over {len(crops)} crops; nothing written")
    try:
        write_atomically(out, lambda f: f.write(data), binary=True)
        write_atomically(sidecar(out), lambda f: f.write(f"{exported.sha256}  {out.name}\n"))
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {exc.strerror or exc}") from None
    return Exported(out, exported.sha256, difference, len(crops))
