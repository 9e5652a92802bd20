"""``TrainConfig``: everything a training run depends on, checked on creation and stored whole in every
checkpoint's provenance; ``TrainError``: a run that cannot start or resume."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ipdscan.model import IPDConfig
from ipdscan.preprocess import Preprocessing

from .augment import Augmentation


@dataclass
class TrainConfig:
    """Everything a run depends on; stored whole in every checkpoint's provenance."""

    roots: list[str]  # dataset folders (CNNSpot / GenImage / flat 0_real,1_fake layouts)
    out: str = "runs/ipdnet"  # run directory: checkpoints, metrics.jsonl, curves.png
    variant: str = "layer2"  # where the ResNet-50 trunk is cut: layer2 | layer3 | layer4
    npr: bool = False  # beyond the paper: NPR residuals beside the SRM ones (IPDConfig.npr)
    epochs: int = 100  # upper bound; the lr schedule usually stops training first
    max_steps: int | None = None  # stop after this many optimizer steps in all (counting resumed ones)
    max_minutes: float | None = None  # stop after this much wall time in this invocation
    batch_size: int = 32  # images per optimizer step, over all processes
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)  # Adam
    seed: int = 0  # fixes initialisation, data order, augmentation and the val split
    workers: int | None = None  # decoding processes per training process (default: 1 on CPU, more on CUDA)
    device: str = "auto"  # auto | cpu | cuda | cuda:N (torchrun: each process takes cuda:LOCAL_RANK)
    threads: int | None = None  # torch CPU threads per process (default: torch's, one per core)
    cpu_bf16: bool = False  # the trunk in bfloat16 on the CPU (CUDA always); SRM and head stay float32
    channels_last: bool = True  # NHWC: about twice as fast on CPU, faster on CUDA too
    val_split: float = 0.1  # fraction held out for validation from roots that have no val/ folders
    val_every: int = 0  # also validate every N steps (0: once per epoch only)
    patience: int = 5  # validations without improvement before lr /= 10 (CNNDetection's earlystop_epoch)
    min_lr: float = 1e-6  # stop once the lr falls below this
    min_delta: float = 0.001  # the least gain in the plateau metric that counts as improvement
    plateau_metric: str = "acc"  # acc (as CNNDetection) | ap
    blur_prob: float = Augmentation.blur_prob
    blur_sigma: tuple[float, float] = Augmentation.blur_sigma
    jpeg_prob: float = Augmentation.jpeg_prob
    jpeg_quality: tuple[int, int] = Augmentation.jpeg_quality
    flip_prob: float = Augmentation.flip_prob
    downscale_prob: float = Augmentation.downscale_prob  # beyond the paper (off): see augment.py
    downscale_range: tuple[float, float] = Augmentation.downscale_range
    pair_sync: bool = False  # beyond the paper: a real and its fake in one batch with one view draw (see pairs.py)
    save_every_minutes: float = 10.0  # also save last.pt between validations, so a killed run loses at most this
    log_every: int = 10  # steps between train lines in metrics.jsonl
    resume: str | None = None  # a run directory or its last.pt: continue from its step and optimizer state
    init_from: str | None = None  # a checkpoint whose weights start a fresh run (fine-tuning); optimizer starts anew
    name: str | None = None  # checkpoint name (default: ipdnet-<variant>-<out folder name>)
    progress: bool = True  # tqdm bars on stderr
    # The paper's pad 224 / crop 224 / resize 256; the model's input size follows preprocessing.size.
    # Not a command-line option: the tests train small models with a small one.
    preprocessing: Preprocessing = field(default_factory=Preprocessing)

    def __post_init__(self):
        self.roots = [str(root) for root in self.roots]  # plain data: provenance loads with weights_only
        self.out = str(self.out)
        self.resume = None if self.resume is None else str(self.resume)
        self.init_from = None if self.init_from is None else str(self.init_from)
        if self.resume and self.init_from:
            raise ValueError("init_from starts a new run from a checkpoint's weights; resume continues a run: give one")
        self.betas, self.blur_sigma, self.jpeg_quality = tuple(self.betas), tuple(self.blur_sigma), tuple(self.jpeg_quality)
        self.downscale_range = tuple(self.downscale_range)
        if not self.roots:
            raise ValueError("give at least one dataset root")
        if self.plateau_metric not in ("acc", "ap"):
            raise ValueError(f"plateau_metric must be acc or ap, not {self.plateau_metric!r}")
        if not 0 <= self.val_split < 1:
            raise ValueError(f"val_split must be in [0, 1), not {self.val_split}")
        for name in ("epochs", "batch_size", "log_every", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.pair_sync and self.batch_size % 2:
            raise ValueError(f"pair_sync needs an even batch_size (pairs of images), not {self.batch_size}")
        if self.save_every_minutes < 0:
            raise ValueError(f"save_every_minutes must be >= 0 (0: only at validations), not {self.save_every_minutes}")
        self.augmentation()  # validates the augmentation fields
        self.model_config()  # validates variant against the input size

    def augmentation(self) -> Augmentation:
        return Augmentation(self.blur_prob, self.blur_sigma, self.jpeg_prob, self.jpeg_quality, self.flip_prob,
                            self.downscale_prob, self.downscale_range)

    def model_config(self) -> IPDConfig:
        return IPDConfig(self.variant, input_size=self.preprocessing.size, npr=self.npr)

    def checkpoint_name(self) -> str:
        return self.name or f"ipdnet-{self.variant}-{Path(self.out).resolve().name}"


class TrainError(ValueError):
    """A run that cannot start or resume; the message names the cause and the fix."""
