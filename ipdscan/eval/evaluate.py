"""Evaluation on labelled folders: per-generator AP / ROC AUC / accuracy exactly as CNNDetection's validate.py.

Every image goes through the scan's path (``labelled.read_pixels``, centre crop, ``Detector.score``), a
perturbation (JPEG, blur, resize) applied to the decoded image before the crop; a file that cannot
be decoded is counted per generator and left out of its metrics. The pieces: ``labelled`` (layouts, files,
pixels), ``perturbations``, ``metrics`` (and its bootstrap), ``eval_report`` (tables, intervals, files, plots).
"""
from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..model.backends import Backend
from ..model.runtime import default_workers
from ..text import csv_text
from .eval_report import EvalReport
from .labelled import EvalImages, collate_indexed, find_generators
from .metrics import Row, metrics
from .perturbations import Perturbation


def evaluate(roots: Iterable[str | Path], detector: Backend, *, batch_size: int = 32, workers: int | None = None,
             perturbations: Sequence[Perturbation] | None = None, scores_out: str | Path | None = None,
             threshold: float = 0.5, progress: bool = False) -> EvalReport:
    """Score every image below ``roots`` (clean, then once per perturbation) and compute per-generator metrics.

    ``scores_out`` writes one CSV line per image and run: path, generator, group, label, perturbation,
    score, error. Raises DatasetError when a root has no labelled folders.
    """
    from tqdm import tqdm

    sets = find_generators(roots)
    paths, labels, owner = [], [], []
    for set_index, generator_set in enumerate(sets):
        for label, files in ((0, generator_set.real_paths), (1, generator_set.fake_paths)):
            paths += files
            labels += [label] * len(files)
            owner += [set_index] * len(files)
    labels_np, owner_np = np.array(labels, dtype=int), np.array(owner, dtype=int)
    device_type = torch.device(detector.device).type  # a torch.device, or ONNX Runtime's "cpu"
    workers = default_workers(workers, device_type)
    scores_file = open(scores_out, "w", encoding="utf-8", newline="") if scores_out else None
    writer = csv.writer(scores_file) if scores_file else None
    if writer:
        writer.writerow(["path", "generator", "group", "label", "perturbation", "score", "error"])
    rows, samples, first_unreadable = [], [], None
    try:
        for perturbation in [None, *(perturbations or [])]:
            tag = str(perturbation) if perturbation else "none"
            loader = DataLoader(EvalImages(paths, detector.preprocessing, perturbation), batch_size=batch_size,
                                num_workers=workers, collate_fn=collate_indexed,
                                pin_memory=device_type == "cuda")
            scores = np.full(len(paths), np.nan)
            errors = {}
            for indices, crops, bad in tqdm(loader, desc=f"eval {tag}", unit="batch", disable=not progress):
                scores[indices] = detector.score(crops)
                errors.update(dict(bad))
            if first_unreadable is None:
                first_unreadable = [errors[index] for index in sorted(errors)]
            for set_index, generator_set in enumerate(sets):
                mine = owner_np == set_index
                scored = mine & ~np.isnan(scores)
                samples.append((labels_np[scored], scores[scored]))
                rows.append(Row(generator_set.name, generator_set.group, tag, **metrics(*samples[-1], threshold),
                                n_unreadable=int((mine & np.isnan(scores)).sum())))
            if writer:
                for i, path in enumerate(paths):
                    generator_set = sets[owner[i]]
                    # 9 significant digits give back the float32 score exactly: AP recomputed from this file
                    # matches the table even where scores differ only in the 7th decimal.
                    score = "" if math.isnan(scores[i]) else f"{scores[i]:.9g}"
                    cells = [path, generator_set.name, generator_set.group, labels[i], tag, score,
                             errors[i].reason if i in errors else ""]
                    writer.writerow([csv_text(cell) for cell in cells])
    finally:
        if scores_file:
            scores_file.close()
    info = {"name": detector.name, "variant": detector.variant, "sha256": detector.sha256}
    return EvalReport(rows, info, first_unreadable or [], samples)
