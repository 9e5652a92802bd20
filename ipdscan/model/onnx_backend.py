"""The ONNX Runtime backend (``backends.py``): the weights' ONNX export scores uint8 crops on the CPU, without torch.

``ipdscan export`` (``export.py``) writes the ``.onnx``: its graph takes the CPU stage's uint8 crops (B, 3, crop,
crop) and returns P(AI-generated) (B,) float32, so the model-input conversion (``torch_preprocess.to_model_input``)
and the sigmoid run inside it and this side needs only numpy. Its metadata carries what a scan needs from the
checkpoint it came from, under the checkpoint's own field names (``weights.py``), each JSON-encoded (ONNX metadata
values are strings): ``name``, ``config``, ``preprocessing``, ``provenance``, ``calibration``, ``threshold`` (the
checkpoint's, resolved by its rule), and ``source_sha256`` / ``source_content_sha256``, the hashes of the ``.pt``.

The file is verified as a checkpoint is: its ``.sha256`` sidecar when present, else, for the shipped default, the
pin ``pins.DEFAULT_ONNX``; the bytes hashed are the bytes the session is built from.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..extras import MissingExtra
from .pins import DEFAULT_ONNX
from .preprocess import Preprocessing
from .runtime import usable_cpus
from .weights import WeightsError, default_weights_path, read_verified, recorded_sha256

try:
    import onnxruntime
except ImportError:
    raise MissingExtra("the ONNX Runtime backend needs ONNX Runtime, which is not installed: "
                       "pip install onnxruntime") from None

ONNX_FORMAT = "ipdscan-onnx"  # the metadata's "format"; a checkpoint's is weights.FORMAT
ONNX_FORMAT_VERSION = 1
INPUT_NAME, OUTPUT_NAME = "crops", "probabilities"
# Every key an export writes; a file lacking one is not an ipdscan export.
METADATA_KEYS = ("format", "format_version", "name", "config", "preprocessing", "provenance", "calibration",
                 "threshold", "source_sha256", "source_content_sha256")
# Most images per session call: 16 or 32 ran fastest (fewer, as the torch backend's cache prefers, ran slower:
# benchmarks/RESULTS.md, "ONNX Runtime's settings"); the cap bounds the activations' memory for a large --batch-size.
ONNX_MICRO_BATCH = 32


@dataclass
class OnnxDetector:
    """A verified ``.onnx`` export in an ONNX Runtime session; the same attributes as ``score.Detector``."""

    session: onnxruntime.InferenceSession
    name: str
    variant: str
    sha256: str  # of the .onnx file, as the report header records it
    threshold: float  # the source checkpoint's own threshold
    preprocessing: Preprocessing
    metadata: dict  # every metadata field, decoded: provenance, calibration, the source .pt's hashes
    device: str = "cpu"
    precision: str = "fp32"
    backend: str = "onnxruntime"

    @property
    def calibration(self) -> dict:
        return self.metadata.get("calibration") or {}

    def score(self, crops: np.ndarray) -> np.ndarray:
        """(B, 3, crop, crop) uint8 -> (B,) float32 probabilities."""
        crops = np.ascontiguousarray(crops, dtype=np.uint8)
        if len(crops) == 0:
            return np.empty(0, np.float32)
        return np.concatenate([self.session.run([OUTPUT_NAME], {INPUT_NAME: crops[start:start + ONNX_MICRO_BATCH]})[0]
                               for start in range(0, len(crops), ONNX_MICRO_BATCH)])


def session_options(threads: int | None = None) -> onnxruntime.SessionOptions:
    """One session's settings: ``threads`` intra-op threads (default: every usable CPU); every graph optimisation
    (BatchNorm folded into the convs, conv + activation fused, the CPU's blocked layouts), faster than the basic
    level; and threads that sleep between ops instead of spinning, so that on a small CPU they leave the cores to
    the scan's decoding worker (the model alone ran no slower, a little faster). Measured on 2 shared cores:
    benchmarks/RESULTS.md, "ONNX Runtime's settings"."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or usable_cpus()
    options.inter_op_num_threads = 1  # one chain of ops: no parallel branches to run
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def default_onnx_path() -> Path:
    """The shipped default's export: beside the shipped default weights."""
    return default_weights_path().with_name(DEFAULT_ONNX.file)


def load_onnx_detector(path: str | Path | None = None, threads: int | None = None) -> OnnxDetector:
    """Read, verify and open an ``.onnx`` export (the shipped default's when None) for scoring on the CPU.
    Raises WeightsError with a one-line fix (missing, tampered, not an ipdscan export)."""
    path = Path(path) if path is not None else default_onnx_path()
    expected = recorded_sha256(path) or (DEFAULT_ONNX.sha256 if path.name == DEFAULT_ONNX.file else None)
    data, digest = read_verified(path, "ONNX model", expected, missing="make one with 'ipdscan export CHECKPOINT'",
                                 restore="restore or re-download it, or export it again")
    return opened(data, digest, path, threads)


def opened(data: bytes, sha256: str, path: Path, threads: int | None = None) -> OnnxDetector:
    """An export's bytes, already verified, in a session; WeightsError unless it is an ipdscan export."""
    try:
        session = onnxruntime.InferenceSession(data, session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:
        reason = " ".join(str(exc).split())[:300]
        raise WeightsError(f"cannot read ONNX model {path}: not an ONNX model ({reason})") from None
    metadata = read_metadata(session.get_modelmeta().custom_metadata_map, path)
    try:
        preprocessing, variant = Preprocessing.from_dict(metadata["preprocessing"]), metadata["config"]["variant"]
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"ONNX model {path} has unusable metadata ({str(exc)[:200]})") from None
    return OnnxDetector(session, name=metadata["name"], variant=variant, sha256=sha256,
                        threshold=metadata["threshold"], preprocessing=preprocessing, metadata=metadata)


def read_metadata(props: dict[str, str], path: Path) -> dict:
    """The export's metadata, each value JSON-decoded; WeightsError when it is not an ipdscan export of a version
    this ipdscan reads, or its threshold is unusable."""
    if props.get("format") != json.dumps(ONNX_FORMAT):
        raise WeightsError(f"{path} is not an ipdscan ONNX export (make one with 'ipdscan export CHECKPOINT')")
    missing = [key for key in METADATA_KEYS if key not in props]
    if missing:
        raise WeightsError(f"ONNX model {path} lacks the metadata a scan needs ({', '.join(missing)}): "
                           "export it again with 'ipdscan export'")
    try:
        metadata = {key: json.loads(props[key]) for key in METADATA_KEYS}
    except ValueError as exc:
        raise WeightsError(f"ONNX model {path} has unusable metadata ({str(exc)[:200]})") from None
    if metadata["format_version"] != ONNX_FORMAT_VERSION:
        raise WeightsError(f"{path} has ONNX export format version {metadata['format_version']}; this ipdscan "
                           f"reads version {ONNX_FORMAT_VERSION}: upgrade ipdscan or export it again")
    threshold = metadata["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise WeightsError(f"ONNX model {path} has an unusable threshold: it must be a number in [0, 1], "
                           f"not {threshold!r}")
    return metadata
