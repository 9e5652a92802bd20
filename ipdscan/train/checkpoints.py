"""A run directory's checkpoints: last.pt and best.pt (ipdscan checkpoints that ``scan --weights`` reads) and
last.state.pt (optimizer, progress, RNG: what ``resume`` needs beside last.pt), written and read back with the
checks that keep a resumed run from mixing files of different steps or models; and the run record (provenance)
every checkpoint carries."""
from __future__ import annotations

import json
import platform
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
import torchvision

import ipdscan
from ipdscan.model.ipdnet import IPDConfig, IPDNet
from ipdscan.model.preprocess import Preprocessing
from ipdscan.model.weights import Checkpoint, WeightsError, load_checkpoint, save_checkpoint
from ipdscan.reports.publish import write_atomically

from .config import TrainConfig, TrainError
from .schedule import Progress

STATE_FORMAT = "ipdscan-train-state"


def versions() -> dict:
    """The software a run ran on, for its record."""
    return {"ipdscan": ipdscan.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


def run_record(config: TrainConfig, world_size: int, progress: Progress, val: dict | None, data_summary: dict,
               initial_weights: dict | None) -> dict:
    """The run record stored in every checkpoint: the whole config, where the run stands, its last validation,
    its data, the software, the weights it started from. Plain data only, so the checkpoint loads with
    weights_only."""
    record = {"trainer": "ipdscan.train.loop, CNNDetection recipe", "config": asdict(config),
              "world_size": world_size, "step": progress.step, "epoch": progress.epoch, "lr": progress.lr,
              "metrics": {"val": val, "best_val_ap": progress.best_ap}, "data": data_summary, "versions": versions(),
              "initial_weights": initial_weights, "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return json.loads(json.dumps(record))


def save_run(out: Path, model: IPDNet, optimizer: torch.optim.Optimizer, progress: Progress, config: TrainConfig,
             provenance: dict, improved: bool) -> None:
    """last.pt, best.pt when ``improved``, then last.state.pt naming the last.pt it belongs to."""
    digest = save_checkpoint(out / "last.pt", model, config.preprocessing, name=config.checkpoint_name(),
                             provenance=provenance)
    if improved:
        save_checkpoint(out / "best.pt", model, config.preprocessing, name=config.checkpoint_name(), provenance=provenance)
    state = {"format": STATE_FORMAT, "last_sha256": digest, "progress": asdict(progress),
             "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}
    write_atomically(out / "last.state.pt", lambda state_file: torch.save(state, state_file), binary=True)


STEM_CONV = "trunk.stem.0.weight"  # the trunk's first convolution: the only tensor the input channels shape


def start_from(model: IPDNet, init_from: str, preprocessing: Preprocessing) -> dict:
    """Load another checkpoint's weights into ``model`` (same variant and preprocessing: fine-tuning); returns
    the run record's ``initial_weights``.

    A checkpoint without the NPR input also starts an NPR model (``npr=True``): the NPR channels get zero weights
    in the trunk's first convolution, so the run starts from exactly the checkpoint's scores and learns what the
    NPR residuals add; that is how the NPR ablation compares equal budgets from the same weights."""
    try:
        checkpoint = load_checkpoint(init_from)
    except WeightsError as exc:
        raise TrainError(f"cannot start from {init_from}: {exc}") from None
    widen = model.config.npr and not checkpoint.config.npr
    check_same_model(checkpoint, init_from, replace(model.config, npr=False) if widen else model.config,
                     preprocessing, "fine-tune it")
    state = checkpoint.model.state_dict()
    if widen:
        stem = state[STEM_CONV]  # (64, 3 SRM channels, 7, 7)
        npr_channels = model.config.input_channels - stem.shape[1]
        state[STEM_CONV] = torch.cat([stem, stem.new_zeros(stem.shape[0], npr_channels, *stem.shape[2:])], dim=1)
    model.load_state_dict(state)
    return {"name": checkpoint.name, "sha256": checkpoint.sha256}


def resume_into(model: IPDNet, optimizer: torch.optim.Optimizer, resume: str,
                preprocessing: Preprocessing) -> tuple[Progress, dict | None]:
    """Load a run's last.pt and state into ``model``, ``optimizer`` and torch's RNG; returns where the run stood
    and the weights it first started from."""
    checkpoint, state = load_run(resume, model.config, preprocessing)
    model.load_state_dict(checkpoint.model.state_dict())
    optimizer.load_state_dict(state["optimizer"])  # also moves Adam's moments to the model's device
    torch.set_rng_state(state["torch_rng"])
    return Progress(**state["progress"]), checkpoint.provenance.get("initial_weights")


def load_run(resume: str, model_config: IPDConfig, preprocessing: Preprocessing) -> tuple[Checkpoint, dict]:
    """A run directory's (or a last.pt's) checkpoint and training state, checked to belong together and to hold a
    model like this run's; TrainError names what does not fit."""
    path = Path(resume)
    last = path / "last.pt" if path.is_dir() else path
    state_path = last.with_name(f"{last.stem}.state.pt")
    try:
        checkpoint = load_checkpoint(last)
    except WeightsError as exc:
        raise TrainError(f"cannot resume: {exc}") from None
    if not state_path.is_file():
        raise TrainError(f"cannot resume from {last}: its training state {state_path.name} is missing")
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TrainError(f"{state_path} is not an ipdscan training state")
    if state["last_sha256"] != checkpoint.sha256:
        raise TrainError(f"{last} and {state_path.name} come from different steps (interrupted write?); "
                          "start a new run or restore both files")
    check_same_model(checkpoint, last, model_config, preprocessing, "resume")
    return checkpoint, state


def check_same_model(checkpoint: Checkpoint, path, model_config: IPDConfig, preprocessing: Preprocessing,
                     instead: str) -> None:
    if checkpoint.config != model_config or checkpoint.preprocessing != preprocessing:
        raise TrainError(f"{path} holds a {model_text(checkpoint.config)}; this run builds a "
                         f"{model_text(model_config)}: {instead} with the same variant and input")


def model_text(config: IPDConfig) -> str:
    return f"{config.variant}{' + NPR' if config.npr else ''} model (input {config.input_size} px)"
