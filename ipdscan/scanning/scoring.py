"""The scoring stage, whatever the backend: a prepared batch -> its finished report rows (``score_batch``), what
every executor runs in its scoring process (``pipeline``, ``ray_workers``)."""
from __future__ import annotations

import math

from ..model.backends import Backend
from .cpu_stage import Prepared, ScanBatch
from .plan import ScanPlan
from .result import Result


def score_batch(detector: Backend, batch: ScanBatch, plan: ScanPlan) -> list[Result]:
    """A collated batch -> its samples' finished rows, in order, labelled at the plan's threshold. JPEGs left for
    the device are decoded there first (the local CUDA executor has done so a batch ahead, in its reader thread)."""
    if batch.undecoded:
        from .device_stage import decode_on_device  # torch: only where the plan decodes on the device
        batch = decode_on_device(batch, plan)
    scores, start, rows = detector.score(batch.crops).tolist(), 0, []
    for sample in batch.samples:
        rows.append(finished_row(sample, scores[start:start + sample.crop_count], plan.threshold,
                                 plan.preprocessing.crop))
        start += sample.crop_count
    return rows


def finished_row(sample: Prepared, scores: list[float], threshold: float, crop_size: int) -> Result:
    """A sample's report row: its score (the centre crop's) and label and, with tiles, their max, mean and the best
    tile's box; a model_error if any score is not a number (NaN >= threshold is False: it would pass as "real",
    and --fail-on never trip)."""
    if sample.failed:
        return sample.failed
    if not all(map(math.isfinite, scores)):
        return Result.failed(sample.input, "model_error", "the model's output is not a number (NaN or infinite): "
                             "the weights or the device are faulty", **sample.columns)
    score = scores[0]
    tiles = {}
    if sample.offsets:
        tile_scores = scores[1:]
        best = max(range(len(tile_scores)), key=tile_scores.__getitem__)
        top, left = sample.offsets[best]
        x, y = max(0, left), max(0, top)
        width = min(sample.columns["width"], left + crop_size) - x
        height = min(sample.columns["height"], top + crop_size) - y
        tiles = {"crops_max": tile_scores[best], "crops_mean": sum(tile_scores) / len(tile_scores),
                 "crops_max_tile": f"{x},{y},{width},{height}"}
    return Result(sample.input, score=score, label="ai" if score >= threshold else "real", **sample.columns, **tiles)
