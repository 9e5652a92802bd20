"""``python -m ipdscan.train ROOT... --out runs/x``: the trainer's own command line, for torchrun.

    torchrun --nproc-per-node 2 -m ipdscan.train data/corpus --out runs/x --max-minutes 60
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from ipdscan.labelled import DatasetError
from ipdscan.interrupt import sigterm_as_interrupt
from ipdscan.score import DeviceError

from .config import TrainConfig, TrainError
from .loop import train

D = TrainConfig.__dataclass_fields__  # defaults shown in --help come from the dataclass itself


def default(name):
    return D[name].default


def parse_args(argv: list[str] | None = None, prog: str = "python -m ipdscan.train") -> TrainConfig:
    ap = argparse.ArgumentParser(prog=prog, description="Train IPD-Net with the CNNDetection recipe "
                                 "(see trainer/README.md). Under torchrun every process runs this; rank 0 writes.")
    ap.add_argument("roots", nargs="+", help="dataset folders: CNNSpot, GenImage or flat 0_real/1_fake layouts")
    ap.add_argument("--out", default=default("out"), help="run directory (default: %(default)s)")
    ap.add_argument("--variant", default=default("variant"), choices=["layer2", "layer3", "layer4"],
                    help="where the ResNet-50 trunk is cut (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=default("epochs"), help="at most this many epochs (default: %(default)s)")
    ap.add_argument("--max-steps", type=int, help="stop after this many optimizer steps in all, resumed ones included")
    ap.add_argument("--max-minutes", type=float, help="stop (validate, save) after this much wall time")
    ap.add_argument("--batch-size", type=int, default=default("batch_size"),
                    help="images per step over all processes (default: %(default)s)")
    ap.add_argument("--lr", type=float, default=default("lr"), help="Adam learning rate (default: %(default)s)")
    ap.add_argument("--betas", type=float, nargs=2, default=default("betas"), metavar=("BETA1", "BETA2"),
                    help="Adam betas (default: 0.9 0.999)")
    ap.add_argument("--seed", type=int, default=default("seed"),
                    help="initialisation, data order, augmentation, val split (default: %(default)s)")
    ap.add_argument("--workers", type=int, help="decoding processes per training process (default: 1 on CPU, more on CUDA)")
    ap.add_argument("--device", default=default("device"), help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    ap.add_argument("--threads", type=int, help="torch CPU threads per process (default: one per core)")
    ap.add_argument("--cpu-bf16", action="store_true", help="run the trunk in bfloat16 on the CPU (CUDA always does)")
    ap.add_argument("--no-channels-last", dest="channels_last", action="store_false", help="keep NCHW tensors")
    ap.add_argument("--val-split", type=float, default=default("val_split"),
                    help="fraction held out from roots without val/ folders (default: %(default)s)")
    ap.add_argument("--val-every", type=int, default=default("val_every"),
                    help="also validate and save every N steps; 0: once per epoch (default: %(default)s)")
    ap.add_argument("--patience", type=int, default=default("patience"),
                    help="validations without gain before lr /= 10 (default: %(default)s)")
    ap.add_argument("--min-lr", type=float, default=default("min_lr"), help="stop once the lr falls below this (default: %(default)s)")
    ap.add_argument("--min-delta", type=float, default=default("min_delta"),
                    help="least gain that counts as improvement (default: %(default)s)")
    ap.add_argument("--plateau-metric", default=default("plateau_metric"), choices=["acc", "ap"],
                    help="validation metric the lr schedule watches (default: %(default)s)")
    ap.add_argument("--blur-prob", type=float, default=default("blur_prob"), help="Gaussian blur probability (default: %(default)s)")
    ap.add_argument("--blur-sigma", type=float, nargs=2, default=default("blur_sigma"), metavar=("LOW", "HIGH"),
                    help="blur sigma range (default: 0 3)")
    ap.add_argument("--jpeg-prob", type=float, default=default("jpeg_prob"), help="JPEG re-encoding probability (default: %(default)s)")
    ap.add_argument("--jpeg-quality", type=int, nargs=2, default=default("jpeg_quality"), metavar=("LOW", "HIGH"),
                    help="JPEG quality range, inclusive (default: 30 100)")
    ap.add_argument("--flip-prob", type=float, default=default("flip_prob"), help="horizontal flip probability (default: %(default)s)")
    ap.add_argument("--downscale-prob", type=float, default=default("downscale_prob"),
                    help="beyond the paper: probability of a down-scale before the JPEG step (default: %(default)s)")
    ap.add_argument("--downscale-range", type=float, nargs=2, default=default("downscale_range"), metavar=("LOW", "HIGH"),
                    help="down-scale factor range (default: 0.5 1)")
    ap.add_argument("--pair-sync", action="store_true",
                    help="beyond the paper: each real and its fake (same file name, same generator folder) in one batch "
                         "with the same crop, flip, blur, down-scale and JPEG")
    ap.add_argument("--npr", action="store_true",
                    help="beyond the paper: NPR residuals (x - up(down(x))) beside the SRM ones as the trunk's input")
    ap.add_argument("--save-every-minutes", type=float, default=default("save_every_minutes"),
                    help="also save last.pt between validations this often, so a killed run resumes from there; "
                         "0: only at validations (default: %(default)s)")
    ap.add_argument("--log-every", type=int, default=default("log_every"),
                    help="steps between train lines in metrics.jsonl (default: %(default)s)")
    ap.add_argument("--resume", help="continue a run: its directory or its last.pt")
    ap.add_argument("--init-from", help="start a new run from this checkpoint's weights (fine-tuning; same variant)")
    ap.add_argument("--name", help="checkpoint name (default: ipdnet-<variant>-<out folder name>)")
    ap.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    args = ap.parse_args(argv)
    try:
        return TrainConfig(**vars(args))
    except ValueError as exc:
        ap.error(str(exc))


def main(argv: list[str] | None = None, prog: str = "python -m ipdscan.train") -> int:
    """Parse, train, print the summary (rank 0). Exit status: 0 done, 2 bad options, unusable data or interrupted."""
    config = parse_args(argv, prog)
    try:
        with sigterm_as_interrupt():  # a CI cancel stops training as Ctrl-C does
            summary = train(config)
    except (DatasetError, DeviceError, TrainError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # exit 2 as every other command, not 130/143; what was saved stays
        print(f"error: {str(exc) or 'interrupted'}; the run keeps its checkpoints up to its last save: "
              f"continue it with --resume {config.out}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
