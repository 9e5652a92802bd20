"""What runs on the Ray cluster for ``ipdscan scan --ray`` (``ray_scan`` drives it): a CPU task prepares a batch of
items as a local scan's DataLoader worker does (``cpu_stage.prepare``, ``collate_prepared``), and a scoring actor
scores it as a local scan does (``device_stage.decode_on_device``, ``score.score_batch``). A batch crosses between
them as its samples pickled and its uint8 crops as one array's bytes, never as decoded whole images.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .item import Item
from .result import Result

# Tests only: a folder where a file named prepare-<index> or score-<index> makes the process handling the batch
# that starts at input <index> exit (once: the file is removed first), as a killed worker would. Unset: nothing.
FAULTS_ENV = "IPDSCAN_RAY_TEST_FAULTS"


# --- the stages -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stage:
    """What a CPU task and a scoring actor need of the scan: picklable, without the driver's resume set."""

    options: object  # ScanOptions, skip=None
    preprocessing: object  # Preprocessing
    on_device: bool  # plain JPEGs decoded by the scoring device (ScanOptions.decodes_on_device)
    threshold: float


def prepare_batch(items: list[Item], stage: Stage):
    """A batch of items -> a collated ``cpu_stage.ScanBatch`` (fetched, decoded and cropped, or JPEGs left whole)."""
    from .cpu_stage import collate_prepared, prepare_items
    return collate_prepared(list(prepare_items(items, stage.options, stage.preprocessing, stage.on_device)))


def score_prepared(detector, batch, stage: Stage) -> list[Result]:
    """A collated batch -> its finished Results, as a local scan scores a batch."""
    from .device_stage import decode_on_device
    from .score import score_batch
    if stage.on_device:
        batch = decode_on_device(batch, detector.device, stage.preprocessing, stage.options.max_pixels,
                                 stage.options.tiles)
    return score_batch(detector, batch, stage.threshold)


# --- what runs on the cluster -----------------------------------------------------------------------------------

def test_fault(where: str, index: int) -> None:
    """Tests only (``FAULTS_ENV``): exit this process, once, at the batch starting at input ``index``."""
    folder = os.environ.get(FAULTS_ENV)
    if folder:
        try:
            os.unlink(os.path.join(folder, f"{where}-{index}"))
        except OSError:
            return
        os._exit(1)


def prepare_rows(rows: dict, stage: Stage) -> dict:
    """Ray task: each row (a batch's items) -> the batch as it crosses to a scoring actor: the samples' rows and
    offsets pickled, the crops as one uint8 array's bytes, JPEGs left for the device back to back."""
    out = {"index": [], "samples": [], "crops": [], "encoded": []}
    for index, blob in zip(rows["index"], rows["items"]):
        test_fault("prepare", int(index))
        batch = prepare_batch(pickle.loads(blob), stage)
        out["index"].append(int(index))
        out["samples"].append(pickle.dumps(batch.samples, protocol=pickle.HIGHEST_PROTOCOL))
        out["crops"].append(batch.crops.numpy().tobytes())
        out["encoded"].append(batch.encoded.numpy().tobytes())
    return {"index": np.array(out["index"], dtype=np.int64),
            **{name: np.array(out[name], dtype=object) for name in ("samples", "crops", "encoded")}}


class Scorer:
    """Ray actor: the detector, loaded once from the driver's weights (checked against their sha256)."""

    def __init__(self, weights: list, sha256: str, device: str, precision: str, stage: Stage,
                 threads: int | None = None):
        import torch
        if threads:
            torch.set_num_threads(threads)

        from .score import Detector
        from .weights import load_checkpoint
        import ray
        with tempfile.TemporaryDirectory(prefix="ipdscan-ray-") as folder:
            path = Path(folder) / "weights.pt"
            path.write_bytes(ray.get(weights[0]))  # in a list: Ray hands the actor the reference, not the bytes
            checkpoint = load_checkpoint(path, expected_sha256=sha256)
        self.detector = Detector(checkpoint, torch.device(device), precision)
        self.stage = stage

    def __call__(self, rows: dict) -> dict:
        import torch

        from .cpu_stage import ScanBatch
        crop = self.stage.preprocessing.crop
        indices, results = [], []
        for index, samples, crops, encoded in zip(rows["index"], rows["samples"], rows["crops"], rows["encoded"]):
            test_fault("score", int(index))
            pixels = torch.from_numpy(np.frombuffer(crops, np.uint8).copy()).view(-1, 3, crop, crop)
            batch = ScanBatch(pickle.loads(samples), pixels, torch.from_numpy(np.frombuffer(encoded, np.uint8).copy()))
            indices.append(int(index))
            results.append(pickle.dumps(score_prepared(self.detector, batch, self.stage),
                                        protocol=pickle.HIGHEST_PROTOCOL))
        return {"index": np.array(indices, dtype=np.int64), "results": np.array(results, dtype=object)}
