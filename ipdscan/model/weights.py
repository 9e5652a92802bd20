"""Checkpoint format: everything needed to rebuild, verify and feed the model travels in one file.

A checkpoint is a ``torch.save``d dict of tensors and plain data only (so it loads with
``weights_only=True``; a pickle carrying code is refused, never executed):

    format          "ipdscan-checkpoint", format_version 1
    name            e.g. "ipdnet-layer2-corpus-v3"
    config          IPDConfig as a dict: rebuilds the model
    preprocessing   Preprocessing as a dict: pad / crop / resize / normalisation
    provenance      training recipe, data, metrics (free-form plain data)
    calibration     optional: {"threshold": t, ...how t was chosen}; the scan's default threshold
    state_dict      model tensors (float32, or float16 for smaller files)
    content_sha256  sha256 over all of the above, so a file vouches for its own contents

Beside it, ``<file>.sha256`` (sha256sum format) records the whole file's hash; when present it
must match. The shipped default is also pinned by ``pins.DEFAULT_WEIGHTS`` (torchvision style).

torch and the model load inside the functions that read or write a checkpoint: the torch-free scan imports this
module for ``WeightsError`` and ``default_weights_path`` only.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..reports.publish import write_atomically
from .pins import DEFAULT_WEIGHTS
from .preprocess import Preprocessing

if TYPE_CHECKING:
    from .ipdnet import IPDConfig, IPDNet

FORMAT = "ipdscan-checkpoint"
FORMAT_VERSION = 1
MAX_CHECKPOINT_BYTES = 1 << 30
UNCALIBRATED_THRESHOLD = 0.5  # for checkpoints that carry no calibration (the field's convention)
MAX_REASON = 2000  # characters of a loader's error kept in a WeightsError




class WeightsError(Exception):
    """A checkpoint that cannot be used; the message names the file and the fix."""


@dataclass
class Checkpoint:
    model: IPDNet
    preprocessing: Preprocessing
    name: str
    provenance: dict
    path: Path
    sha256: str  # of the whole file
    meta: dict = field(default_factory=dict)  # format, dtype, content hash: what reports may echo
    calibration: dict = field(default_factory=dict)  # {"threshold": t, ...}: empty when never calibrated

    @property
    def config(self) -> IPDConfig:
        return self.model.config

    @property
    def threshold(self) -> float:
        """The score at or above which an image is labelled ai unless the user says otherwise."""
        return float(self.calibration.get("threshold", UNCALIBRATED_THRESHOLD))


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_sha256(config: dict, preprocessing: dict, provenance: dict, name: str, state_dict: dict,
                   calibration: dict | None = None) -> str:
    import torch
    h = hashlib.sha256()
    described = {"config": config, "preprocessing": preprocessing, "provenance": provenance, "name": name}
    if calibration is not None:  # absent from files written before calibration existed: their hashes stay valid
        described["calibration"] = calibration
    h.update(json.dumps(described, sort_keys=True, default=str).encode())
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | Path, model: IPDNet, preprocessing: Preprocessing, *, name: str,
                    provenance: dict | None = None, half: bool = False, calibration: dict | None = None) -> str:
    """Write a checkpoint and its ``.sha256`` sidecar; returns the file's sha256."""
    import torch
    if calibration is not None:
        check_calibration(calibration, Path(path))
    path = Path(path)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in model.state_dict().items()}
    config, prep, provenance = model.config.to_dict(), preprocessing.to_dict(), provenance or {}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "config": config,
        "preprocessing": prep,
        "provenance": provenance,
        "state_dict": state,
        "content_sha256": content_sha256(config, prep, provenance, name, state, calibration),
    }
    if calibration is not None:
        payload["calibration"] = calibration
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    digest = bytes_sha256(data)
    write_atomically(path, lambda f: f.write(data), binary=True)
    write_atomically(sidecar(path), lambda f: f.write(f"{digest}  {path.name}\n"))
    return digest


def check_calibration(calibration, path: Path) -> None:
    threshold = calibration.get("threshold") if isinstance(calibration, dict) else None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise WeightsError(f"weights file {path} has an unusable calibration: its threshold must be a number "
                           f"in [0, 1], not {threshold!r}")


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def recorded_sha256(path: Path) -> str | None:
    """The hash recorded for ``path``: its sidecar, or the pin of the shipped default."""
    if sidecar(path).is_file():
        words = sidecar(path).read_text().split()
        return words[0].lower() if words else ""
    if DEFAULT_WEIGHTS and path.name == DEFAULT_WEIGHTS.file:
        return DEFAULT_WEIGHTS.sha256
    return None


def read_verified(path: Path, kind: str, expected_sha256: str | None, *, missing: str,
                  restore: str) -> tuple[bytes, str]:
    """A weights file's bytes and sha256, checked the one way every kind of weights file is: a regular file, not
    absurdly large, readable, and matching ``expected_sha256`` when one is recorded. ``kind`` names the file in
    the errors ("weights file", "ONNX model"); ``missing`` and ``restore`` are their one-line fixes."""
    if not path.is_file():
        raise WeightsError(f"{kind} not found: {path} ({missing})")
    if path.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise WeightsError(f"{kind} too large to be an ipdscan file: {path}")
    try:
        data = path.read_bytes()  # hash and parse the same bytes: no swap between check and use
    except OSError as exc:  # /proc/self/mem, a file that vanished or cannot be read
        raise WeightsError(f"cannot read {kind} {path}: {exc.strerror or exc}") from None
    digest = bytes_sha256(data)
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise WeightsError(f"{kind} {path} does not match its recorded sha256 (expected {expected_sha256[:12]}…, "
                           f"got {digest[:12]}…): it is corrupt or was modified; {restore}")
    return data, digest


def load_checkpoint(path: str | Path, *, expected_sha256: str | None = None) -> Checkpoint:
    """Read, verify and rebuild a checkpoint on the CPU. Raises WeightsError with a one-line fix."""
    import torch
    path = Path(path)
    data, digest = read_verified(path, "weights file", expected_sha256 or recorded_sha256(path),
                                 missing="pass --weights PATH to a checkpoint made by 'ipdscan train'",
                                 restore="restore or re-download it")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, code payloads refused by weights_only
        # torch's refusal of a pickle that carries code spans paragraphs: what it tried to call comes after a
        # first line that suggests weights_only=False and only then warns of code execution. Keep all of it,
        # on one line, bounded (the text can quote names from the file).
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if len(reason) > MAX_REASON:
            reason = reason[:MAX_REASON] + "…"
        raise WeightsError(f"cannot read weights file {path}: not a safe ipdscan checkpoint ({reason})") from None
    return _rebuild(payload, path, digest)


def _rebuild(payload, path: Path, digest: str) -> Checkpoint:
    import torch

    from .ipdnet import IPDConfig, IPDNet
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WeightsError(f"{path} is not an ipdscan checkpoint (make one with 'ipdscan train')")
    if payload.get("format_version") != FORMAT_VERSION:
        raise WeightsError(f"{path} has checkpoint format version {payload.get('format_version')}; "
                           f"this ipdscan reads version {FORMAT_VERSION}: upgrade ipdscan")
    try:
        name, config, prep, provenance, state = (payload[k] for k in
                                                 ("name", "config", "preprocessing", "provenance", "state_dict"))
        calibration = payload.get("calibration")
        if payload["content_sha256"] != content_sha256(config, prep, provenance, name, state, calibration):
            raise WeightsError(f"weights file {path} is corrupt: its contents do not match their own checksum; "
                               "restore or re-download it")
        model = IPDNet(IPDConfig(**config))
        dtypes = {str(t.dtype).removeprefix("torch.") for t in state.values() if t.is_floating_point()}
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if broken:  # every score would be NaN, and NaN >= threshold is False: every image "real"
            raise WeightsError(f"weights file {path} is unusable: {broken[0]}"
                               f"{f' and {len(broken) - 1} more tensors' if len(broken) > 1 else ''} hold NaN or "
                               "infinite values; restore it or train it again")
    except WeightsError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"weights file {path} does not fit this ipdscan's model ({str(exc).splitlines()[0][:200]})") from None
    try:
        preprocessing = Preprocessing.from_dict(prep)
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"weights file {path} has unusable preprocessing ({str(exc)[:200]})") from None
    if preprocessing.size != model.config.input_size:
        raise WeightsError(f"weights file {path} has unusable preprocessing (it resizes to {preprocessing.size} px, "
                           f"the model takes {model.config.input_size} px)")
    model.eval()
    meta = {"format_version": FORMAT_VERSION, "dtype": ",".join(sorted(dtypes)), "content_sha256": payload["content_sha256"]}
    if calibration is not None:
        check_calibration(calibration, path)
    return Checkpoint(model=model, preprocessing=preprocessing, name=name, provenance=provenance,
                      path=path, sha256=digest, meta=meta, calibration=calibration or {})


def default_weights_path() -> Path:
    """Where the shipped default lives: the installed package data, else the source checkout's weights/."""
    if DEFAULT_WEIGHTS is None:
        raise WeightsError("no default weights are shipped with this ipdscan yet: pass --weights PATH "
                           "(a checkpoint made by 'ipdscan train')")
    package = Path(__file__).resolve().parents[1]  # ipdscan/, this module being ipdscan/model/weights.py
    candidates = [package / "default_weights" / DEFAULT_WEIGHTS.file, package.parent / "weights" / DEFAULT_WEIGHTS.file]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise WeightsError(f"default weights {DEFAULT_WEIGHTS.file} are missing from the installation "
                       f"(looked in {candidates[0].parent} and {candidates[1].parent}): reinstall ipdscan or pass --weights PATH")
