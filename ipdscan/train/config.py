"""``TrainConfig``: everything a training run depends on, checked on creation and stored whole in every
checkpoint's provenance; ``TrainError``: a run that cannot start or resume."""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Literal

from ipdscan.model.ipdnet import IPDConfig
from ipdscan.model.preprocess import Preprocessing

from .augment import Augmentation


def option(default=MISSING, *, help: str, flag: str | None = None, metavar: str | None = None):
    """A ``TrainConfig`` field that is also a command-line option (``__main__.py`` builds them from these): its
    ``help``; ``flag``: a bool's one flag when it is not ``--field-name`` (``--no-progress`` sets progress off);
    ``metavar`` (a pair's, or the positional one's). No default: a positional argument."""
    return field(default=default, metadata={"help": help, "flag": flag, "metavar": metavar})


@dataclass
class TrainConfig:
    """Everything a run depends on; stored whole in every checkpoint's provenance. Each field but
    ``preprocessing`` is an option of ``ipdscan train``, its help text beside it."""

    roots: list[str] = option(help="dataset folders: CNNSpot, GenImage or flat 0_real/1_fake layouts", metavar="ROOT")
    out: str = option("runs/ipdnet", help="run directory: checkpoints, metrics.jsonl, curves.png")
    variant: Literal["layer2", "layer3", "layer4"] = option("layer2", help="where the ResNet-50 trunk is cut")
    npr: bool = option(False, help="beyond the paper: NPR residuals (x - up(down(x))) beside the SRM ones as the "
                                   "trunk's input (IPDConfig.npr)")
    epochs: int = option(100, help="at most this many epochs (the lr schedule usually stops training first)")
    max_steps: int | None = option(None, help="stop after this many optimizer steps in all, resumed ones included")
    max_minutes: float | None = option(None, help="stop (validate, save) after this much wall time in this invocation")
    batch_size: int = option(32, help="images per optimizer step over all processes")
    lr: float = option(1e-4, help="Adam learning rate")
    betas: tuple[float, float] = option((0.9, 0.999), help="Adam betas", metavar="BETA1 BETA2")
    seed: int = option(0, help="fixes initialisation, data order, augmentation and the val split")
    workers: int | None = option(None, help="decoding processes per training process (default: 1 on CPU, more on CUDA)")
    device: str = option("auto", help="auto, cpu, cuda or cuda:N (torchrun: each process takes cuda:LOCAL_RANK)")
    threads: int | None = option(None, help="torch CPU threads per process (default: torch's, one per core)")
    cpu_bf16: bool = option(False, help="run the trunk in bfloat16 on the CPU (CUDA always does); SRM and head stay float32")
    channels_last: bool = option(True, flag="--no-channels-last",
                                 help="keep NCHW tensors (channels last, the default, is about twice as fast on CPU)")
    val_split: float = option(0.1, help="fraction held out for validation from roots without val/ folders")
    val_every: int = option(0, help="also validate and save every N steps; 0: once per epoch only")
    patience: int = option(5, help="validations without gain before lr /= 10 (CNNDetection's earlystop_epoch)")
    min_lr: float = option(1e-6, help="stop once the lr falls below this")
    min_delta: float = option(0.001, help="the least gain in the plateau metric that counts as improvement")
    plateau_metric: Literal["acc", "ap"] = option("acc", help="validation metric the lr schedule watches (acc: as CNNDetection)")
    blur_prob: float = option(Augmentation.blur_prob, help="Gaussian blur probability")
    blur_sigma: tuple[float, float] = option(Augmentation.blur_sigma, help="blur sigma range", metavar="LOW HIGH")
    jpeg_prob: float = option(Augmentation.jpeg_prob, help="JPEG re-encoding probability")
    jpeg_quality: tuple[int, int] = option(Augmentation.jpeg_quality, help="JPEG quality range, inclusive",
                                           metavar="LOW HIGH")
    flip_prob: float = option(Augmentation.flip_prob, help="horizontal flip probability")
    downscale_prob: float = option(Augmentation.downscale_prob,
                                   help="beyond the paper: probability of a down-scale before the JPEG step (augment.py)")
    downscale_range: tuple[float, float] = option(Augmentation.downscale_range, help="down-scale factor range",
                                                  metavar="LOW HIGH")
    pair_sync: bool = option(False, help="beyond the paper: each real and its fake (same file name, same generator "
                                         "folder) in one batch with the same crop, flip, blur, down-scale and JPEG (pairs.py)")
    save_every_minutes: float = option(10.0, help="also save last.pt between validations this often, so a killed run "
                                                  "resumes from there; 0: only at validations")
    log_every: int = option(10, help="steps between train lines in metrics.jsonl")
    resume: str | None = option(None, help="continue a run: its directory or its last.pt (step, optimizer state)")
    init_from: str | None = option(None, help="start a new run from this checkpoint's weights (fine-tuning; same "
                                              "variant and input size; a model without NPR also starts an --npr run, "
                                              "its NPR channels at zero); the optimizer starts anew")
    name: str | None = option(None, help="checkpoint name (default: ipdnet-<variant>-<out folder name>)")
    progress: bool = option(True, flag="--no-progress", help="no progress bars (tqdm bars on stderr are the default)")
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
