"""Per-generator metrics exactly as CNNDetection's validate.py computes them (with ROC AUC beside AP), their
unweighted means, and bootstrap intervals for AP and AUC."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

RANKING_METRICS = ("ap", "auc")  # the metrics bootstrap resamples: both need a real and a fake
LEVEL = 0.95  # the intervals' coverage
CHUNK = 2_000_000  # resamples x images held at once by bootstrap (a few arrays of this many floats); the draws
# depend on it (each chunk draws its fakes, then its reals), so changing it changes the intervals a seed gives


def metrics(y_true: Sequence[int], scores: Sequence[float], threshold: float = 0.5) -> dict:
    """AP, ROC AUC, accuracy, real / fake accuracy, as CNNDetection's validate.py (score > threshold is fake).

    AP and AUC need both classes: with no reals or no fakes they are None, and so are r_acc / f_acc for the
    missing class (and acc for an empty set).
    """
    truth = np.asarray(y_true, dtype=int)
    score = np.asarray(scores, dtype=float)
    real, fake = truth == 0, truth == 1
    both = real.any() and fake.any()
    return {
        "ap": float(average_precision_score(truth, score)) if both else None,
        "auc": float(roc_auc_score(truth, score)) if both else None,
        "acc": float(accuracy_score(truth, score > threshold)) if len(truth) else None,
        "r_acc": float(accuracy_score(truth[real], score[real] > threshold)) if real.any() else None,
        "f_acc": float(accuracy_score(truth[fake], score[fake] > threshold)) if fake.any() else None,
        "n_real": int(real.sum()),
        "n_fake": int(fake.sum()),
    }


def bootstrap(y_true: Sequence[int], scores: Sequence[float], resamples: int,
              seed: int | Sequence[int] = 0) -> dict[str, np.ndarray] | None:
    """AP and ROC AUC of ``resamples`` bootstrap resamples: ``{"ap": array, "auc": array}``, one value per resample.

    Each resample draws the reals from the reals and the fakes from the fakes, with replacement (stratified:
    every resample keeps the real and fake counts, so AP and AUC are always defined); the same ``seed`` (an int,
    or ints such as ``(seed, row)`` for independent streams) gives the same resamples. None without both classes.

    Vectorised: a resample is a count per image, and AP and AUC are read from cumulative counts of fakes and
    reals down the images sorted by score, ties grouped as scikit-learn groups them (exactly its
    ``average_precision_score`` and ``roc_auc_score`` of the resampled images).
    """
    if resamples < 1:
        raise ValueError(f"bootstrap needs at least 1 resample, not {resamples}")
    truth = np.asarray(y_true, dtype=int)
    score = np.asarray(scores, dtype=float)
    n_real, n_fake = int((truth == 0).sum()), int((truth == 1).sum())
    if not (n_real and n_fake):
        return None
    order = np.argsort(-score, kind="stable")
    score, fake = score[order], truth[order] == 1
    ends = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]  # the last image of each distinct score
    rng = np.random.default_rng(seed)
    chunk = max(1, CHUNK // len(score))
    out = {"ap": [], "auc": []}
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        counts = np.zeros((size, len(score)))
        counts[:, fake] = rng.multinomial(n_fake, np.full(n_fake, 1 / n_fake), size)
        counts[:, ~fake] = rng.multinomial(n_real, np.full(n_real, 1 / n_real), size)
        tp = np.cumsum(counts * fake, axis=1)[:, ends]  # fakes at or above each distinct score
        fp = np.cumsum(counts * ~fake, axis=1)[:, ends]
        tp_before = np.pad(tp, ((0, 0), (1, 0)))[:, :-1]
        fp_before = np.pad(fp, ((0, 0), (1, 0)))[:, :-1]
        flagged = tp + fp
        precision = np.divide(tp, flagged, out=np.zeros_like(tp), where=flagged > 0)
        out["ap"].append(((tp - tp_before) * precision).sum(axis=1) / n_fake)
        out["auc"].append(((fp - fp_before) * (tp + tp_before)).sum(axis=1) / (2 * n_fake * n_real))
    return {name: np.concatenate(values) for name, values in out.items()}


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap values."""
    low, high = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def bootstrap_interval(y_true: Sequence[int], scores: Sequence[float], metric: str, resamples: int,
                       seed: int | Sequence[int] = 0, level: float = LEVEL) -> tuple[float, float] | None:
    """The percentile ``level`` interval of ``metric`` ("ap" or "auc") over ``bootstrap``'s stratified resamples;
    None where the metric is not defined (one class only)."""
    if metric not in RANKING_METRICS:
        raise ValueError(f"bootstrap intervals are for {' and '.join(RANKING_METRICS)}, not {metric!r}")
    values = bootstrap(y_true, scores, resamples, seed)
    return None if values is None else percentile_interval(values[metric], level)


def mean_interval(resampled: Sequence[np.ndarray | None], level: float = LEVEL) -> tuple[float, float] | None:
    """The interval of an unweighted mean over generators resampled jointly: ``resampled`` holds each generator's
    bootstrap values of one metric (None where it is not defined, left out as ``mean_row`` leaves it out);
    resample i's mean is the mean of every generator's resample i."""
    defined = [values for values in resampled if values is not None]
    return percentile_interval(np.mean(defined, axis=0), level) if defined else None


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
    auc: float | None = None  # ROC AUC; a keyword field, after the positional ones it came after
    # Bootstrap intervals (EvalReport.with_intervals), None where not asked for or not defined.
    ap_low: float | None = None
    ap_high: float | None = None
    auc_low: float | None = None
    auc_high: float | None = None


def mean_row(perturbation: str, group: str, rows: list[Row]) -> Row:
    """Unweighted mean over generators (as papers report it), of the values each defines; counts are summed."""
    def mean(key):
        values = [getattr(row, key) for row in rows if getattr(row, key) is not None]
        return float(np.mean(values)) if values else None
    return Row("mean", group, perturbation, mean("ap"), mean("acc"), mean("r_acc"), mean("f_acc"),
               sum(row.n_real for row in rows), sum(row.n_fake for row in rows), sum(row.n_unreadable for row in rows),
               auc=mean("auc"))
