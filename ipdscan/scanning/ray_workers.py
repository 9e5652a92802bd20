"""What runs on the Ray cluster for ``ipdscan scan --ray`` (``ray_scan`` drives it): a CPU task prepares a batch of
items as a local scan's workers do (``cpu_stage.prepare_batch``), and a scoring actor scores it as a local scan
does (``scoring.score_batch``), both reading the scan's plan (``ScanPlan.for_workers``). A batch crosses between
them as its samples pickled and its uint8 crops as one array's bytes, never as decoded whole images.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from .cpu_stage import ScanBatch, prepare_batch
from .plan import ScanPlan

# Tests only: a folder where a file named prepare-<index> or score-<index> makes the process handling the batch
# that starts at input <index> exit (once: the file is removed first), as a killed worker would. Unset: nothing.
FAULTS_ENV = "IPDSCAN_RAY_TEST_FAULTS"


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


def prepare_rows(rows: dict, plan: ScanPlan) -> dict:
    """Ray task: each row (a batch's items) -> the batch as it crosses to a scoring actor: the samples' rows and
    offsets pickled, the crops as one uint8 array's bytes, JPEGs left for the device back to back."""
    out = {"index": [], "samples": [], "crops": [], "encoded": []}
    for index, blob in zip(rows["index"], rows["items"]):
        test_fault("prepare", int(index))
        batch = prepare_batch(pickle.loads(blob), plan)
        out["index"].append(int(index))
        out["samples"].append(pickle.dumps(batch.samples, protocol=pickle.HIGHEST_PROTOCOL))
        out["crops"].append(batch.crops.tobytes())
        out["encoded"].append(batch.encoded.tobytes())
    return {"index": np.array(out["index"], dtype=np.int64),
            **{name: np.array(out[name], dtype=object) for name in ("samples", "crops", "encoded")}}


class Scorer:
    """Ray actor: the detector, loaded once from the driver's weights (checked against their sha256)."""

    def __init__(self, weights: list, plan: ScanPlan, threads: int | None = None):
        """``weights``: [the object store's reference to the driver's weights file]; the plan's device type
        ("cuda" for one of the actor's GPUs) and precision."""
        import torch
        if threads:
            torch.set_num_threads(threads)

        import ray

        from ..model.detector import Detector
        from ..model.weights import load_checkpoint
        with tempfile.TemporaryDirectory(prefix="ipdscan-ray-") as folder:
            path = Path(folder) / "weights.pt"
            path.write_bytes(ray.get(weights[0]))  # in a list: Ray hands the actor the reference, not the bytes
            checkpoint = load_checkpoint(path, expected_sha256=plan.weights_sha256)
        # An actor's GPU is its cuda device, whichever the driver's was; the plan says where crops go.
        device = "cuda" if plan.on_cuda else "cpu"
        self.detector = Detector(checkpoint, torch.device(device), plan.precision)
        self.plan = replace(plan, device=str(self.detector.device))

    def __call__(self, rows: dict) -> dict:
        from .scoring import score_batch
        crop = self.plan.preprocessing.crop
        indices, results = [], []
        for index, samples, crops, encoded in zip(rows["index"], rows["samples"], rows["crops"], rows["encoded"]):
            test_fault("score", int(index))
            pixels = np.frombuffer(crops, np.uint8).reshape(-1, 3, crop, crop).copy()  # writable, as torch wants
            batch = ScanBatch(pickle.loads(samples), pixels, np.frombuffer(encoded, np.uint8).copy())
            indices.append(int(index))
            results.append(pickle.dumps(score_batch(self.detector, batch, self.plan),
                                        protocol=pickle.HIGHEST_PROTOCOL))
        return {"index": np.array(indices, dtype=np.int64), "results": np.array(results, dtype=object)}
