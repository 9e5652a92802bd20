"""Where a run stands (``Progress``) and CNNDetection's learning-rate schedule: when the plateau metric has not
improved by ``min_delta`` for ``patience`` validations, the learning rate drops tenfold; below ``min_lr`` the
run stops."""
from __future__ import annotations

from dataclasses import dataclass

from .config import TrainConfig

LR_DROPPED, LR_BELOW_MIN = "lr_dropped", "lr_below_min"


@dataclass
class Progress:
    """Where a run stands: saved in last.state.pt, restored by resume."""

    lr: float
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of ``epoch`` already trained on
    best_ap: float | None = None  # best.pt's validation AP
    plateau_best: float | None = None  # best plateau metric since the last lr drop
    bad_rounds: int = 0  # validations since it last improved


def step_schedule(progress: Progress, metric: float | None, config: TrainConfig) -> str:
    """Count one validation's ``metric`` against the plateau: "" (no change), LR_DROPPED (lr / 10, and a fresh
    plateau) or LR_BELOW_MIN (dropped below ``min_lr``: stop)."""
    if metric is not None and (progress.plateau_best is None or metric > progress.plateau_best + config.min_delta):
        progress.plateau_best, progress.bad_rounds = metric, 0
        return ""
    progress.bad_rounds += 1
    if progress.bad_rounds < config.patience:
        return ""
    progress.lr, progress.plateau_best, progress.bad_rounds = progress.lr / 10, None, 0
    if progress.lr < config.min_lr * (1 - 1e-9):  # 1e-4 / 10 / 10 is 1.0000000000000002e-06: not below 1e-6
        return LR_BELOW_MIN
    return LR_DROPPED
