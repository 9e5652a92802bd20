"""`ipdscan export`: a checkpoint to the ONNX model that scans without torch (``export.py``)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..extras import require_torch
from .console import shown, stdout
from .support import fail, failures_exit_2

EXPORT_EPILOG = """\b
Examples:
  ipdscan export runs/x/best.pt                  # writes runs/x/best.onnx and best.onnx.sha256
  ipdscan export best.pt --out models/best.onnx"""


@failures_exit_2
def export(
    checkpoint: Path = typer.Argument(..., metavar="CHECKPOINT", help="A checkpoint made by 'ipdscan train', or the shipped one."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="FILE", help="The .onnx to write (default: beside the checkpoint, the same name with .onnx)."),
):
    """Export a checkpoint to ONNX for --backend onnxruntime: uint8 crops in, probabilities out, the weights'
    name, preprocessing, threshold and provenance in its metadata. Refused if it scores 16 seeded test crops more
    than 1e-3 away from the checkpoint."""
    require_torch("export", "train")
    from ..model.export import ExportError, export_onnx
    from ..model.weights import WeightsError
    try:
        exported = export_onnx(checkpoint, out)
    except (WeightsError, ExportError) as exc:
        raise fail(str(exc))
    stdout.print(f"wrote {shown(exported.path)} sha256 {exported.sha256}; max |score difference| to the torch "
                 f"backend {exported.max_difference:.1e} over {exported.crops} crops", highlight=False)
