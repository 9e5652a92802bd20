"""Per-generator metrics exactly as CNNDetection's validate.py computes them, and their unweighted means."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score


def metrics(y_true: Sequence[int], scores: Sequence[float], threshold: float = 0.5) -> dict:
    """AP, accuracy, real / fake accuracy, as CNNDetection's validate.py (score > threshold is fake).

    AP needs both classes: with no reals or no fakes it is None, and so are r_acc / f_acc for the
    missing class (and acc for an empty set).
    """
    truth = np.asarray(y_true, dtype=int)
    score = np.asarray(scores, dtype=float)
    real, fake = truth == 0, truth == 1
    return {
        "ap": float(average_precision_score(truth, score)) if real.any() and fake.any() else None,
        "acc": float(accuracy_score(truth, score > threshold)) if len(truth) else None,
        "r_acc": float(accuracy_score(truth[real], score[real] > threshold)) if real.any() else None,
        "f_acc": float(accuracy_score(truth[fake], score[fake] > threshold)) if fake.any() else None,
        "n_real": int(real.sum()),
        "n_fake": int(fake.sum()),
    }


@dataclass
class Row:
    generator: str  # "mean" for averages
    group: str  # the root's name; "" on the overall mean
    perturbation: str  # "none" or e.g. "jpeg=75"
    ap: float | None
    acc: float | None
    r_acc: float | None
    f_acc: float | None
    n_real: int
    n_fake: int
    n_unreadable: int = 0


def mean_row(perturbation: str, group: str, rows: list[Row]) -> Row:
    """Unweighted mean over generators (as papers report it), of the values each defines; counts are summed."""
    def mean(key):
        values = [getattr(row, key) for row in rows if getattr(row, key) is not None]
        return float(np.mean(values)) if values else None
    return Row("mean", group, perturbation, mean("ap"), mean("acc"), mean("r_acc"), mean("f_acc"),
               sum(row.n_real for row in rows), sum(row.n_fake for row in rows), sum(row.n_unreadable for row in rows))


