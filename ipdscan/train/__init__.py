"""Training IPD-Net for ipdscan: ``train(TrainConfig(roots=[...]))``, or ``python -m ipdscan.train ROOT...`` (torchrun-ready)."""
from .augment import Augmentation
from .config import TrainConfig, TrainError
from .loop import train

__all__ = ["Augmentation", "TrainConfig", "TrainError", "train"]
