"""``ipdscan/train``: the installed training loop behind ``ipdscan train`` (and ``python -m ipdscan.train``, which
torchrun starts): ``train(TrainConfig(roots=[...]))``. Not to be confused with the top-level ``trainer/``, which is
not installed: the corpus builder and the tooling that turns a run into shipped weights."""
from .augment import Augmentation
from .config import TrainConfig, TrainError
from .loop import train

__all__ = ["Augmentation", "TrainConfig", "TrainError", "train"]
