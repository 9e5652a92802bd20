"""``train(config)``: IPD-Net with the CNNDetection recipe, in one process or many (torchrun).

The recipe (Wang et al. 2020, which IPD-Net follows): BCE on logits, Adam (lr 1e-4, betas 0.9 /
0.999), batch 32, "Blur+JPEG (0.1)" augmentation, validation every epoch. When validation accuracy
has not improved by ``min_delta`` for ``patience`` validations the learning rate drops tenfold;
training stops once it falls below ``min_lr``.

A run directory holds:

    last.pt, best.pt   ipdscan checkpoints (``ipdscan scan --weights runs/x/best.pt``); best = highest val AP
    last.state.pt      optimizer, step, epoch, lr schedule, RNG: what ``resume`` needs beside last.pt
    metrics.jsonl      one JSON object per train log, validation and learning-rate drop
    curves.png         loss, val AP and val accuracy against step

Under torchrun every process trains on its shard of each batch (DistributedDataParallel); rank 0
alone validates, logs and writes files, and broadcasts its learning-rate decisions.

The run's parts: ``config`` (TrainConfig), ``schedule`` (Progress and the learning-rate plateau),
``checkpoints`` (the run directory's files, written and read back), and here the loop (``Run``).
"""
from __future__ import annotations

import json
import math
import platform
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

import ipdscan
from ipdscan.metrics import metrics
from ipdscan.model import IPDNet
from ipdscan.preprocess import to_model_input
from ipdscan.runtime import default_workers

from .checkpoints import load_run, load_weights, save_run
from .config import TrainConfig, TrainError
from .data import Batch, EpochSampler, LabelledImages, collate, split_roots
from .pairs import PairedImages, collate_pairs, pair_up
from .topology import Topology, any_rank, from_main, leave_group, this_process
from .plots import plot_training
from .schedule import LR_BELOW_MIN, LR_DROPPED, Progress, step_schedule


def train(config: TrainConfig) -> dict:
    """Train (or resume) a run; returns its summary. Under torchrun, call it in every process."""
    topology = this_process(config.device)
    try:
        return Run(config, topology).fit()
    finally:
        leave_group(topology)


class Logits(nn.Module):
    """``model.forward_pooled`` as a module, which DistributedDataParallel needs: the scanner's forward pass,
    with the whole trunk under bfloat16 autocast when ``bf16``."""

    def __init__(self, model: IPDNet, bf16: bool):
        super().__init__()
        self.model, self.bf16 = model, bf16

    def forward(self, x):  # (B, 3, S, S) normalised -> (B,) float32 logits
        return self.model.forward_pooled(x, bf16_from=0 if self.bf16 else None)


def append_jsonl(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def versions() -> dict:
    return {"ipdscan": ipdscan.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


class Run:
    def __init__(self, config: TrainConfig, topology: Topology):
        self.config, self.topology, self.device = config, topology, topology.device
        self.out = Path(config.out)
        if config.batch_size % topology.world:
            raise TrainError(f"batch_size {config.batch_size} does not split over {topology.world} processes")
        self.per_rank = config.batch_size // topology.world
        if config.pair_sync and self.per_rank < 2:
            raise TrainError(f"--pair-sync needs at least 2 images per process; batch_size {config.batch_size} over "
                             f"{topology.world} processes gives {self.per_rank}")
        if not config.resume and (self.out / "last.pt").exists():
            raise TrainError(f"{self.out} already holds a run: pass resume={config.out!r} (--resume) to continue it, "
                             "or choose another out directory")
        if config.threads:
            torch.set_num_threads(config.threads)
        self.data = split_roots(config.roots, config.val_split, config.seed)

        torch.manual_seed(config.seed)
        memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model = IPDNet(config.model_config()).to(self.device, memory_format=memory_format)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, betas=config.betas)
        self.progress = Progress(lr=config.lr)
        self.rounds_at = None  # the step of the last validation + checkpoint
        self.initial_weights = None  # sha256 of the checkpoint a fine-tuning run started from
        if config.resume:
            self.restore(config.resume)
        elif config.init_from:
            self.initialise(config.init_from)
        self.logits = Logits(self.model, bf16=self.device.type == "cuda" or config.cpu_bf16)
        self.net = self.logits if topology.world == 1 else DistributedDataParallel(
            self.logits, device_ids=[self.device.index] if self.device.type == "cuda" else None)

        workers = default_workers(config.workers, self.device)
        if config.workers is None and workers:
            workers = max(1, workers // topology.world)  # processes on one machine share its cores
        if config.pair_sync:  # a loader item is a pair: half as many items make a batch
            train_set = PairedImages(pair_up(self.data.train, config.seed), config.preprocessing, config.augmentation(),
                                     config.seed)
            self.items_per_batch, train_collate = self.per_rank // 2, collate_pairs
        else:
            train_set = LabelledImages(self.data.train, config.preprocessing, config.augmentation(), config.seed)
            self.items_per_batch, train_collate = self.per_rank, collate
        self.sampler = EpochSampler(train_set, topology.world, topology.rank, config.seed)
        self.batches_per_epoch = self.sampler.num_samples // self.items_per_batch
        if not self.batches_per_epoch:
            raise TrainError(f"{len(train_set)} training images give no full batch of {config.batch_size}: "
                             "lower batch_size or add images")
        pin = self.device.type == "cuda"
        self.train_loader = DataLoader(train_set, batch_size=self.items_per_batch, sampler=self.sampler, drop_last=True,
                                       num_workers=workers, collate_fn=train_collate, pin_memory=pin)
        self.val_loader = None
        if topology.main and self.data.val:
            self.val_loader = DataLoader(LabelledImages(self.data.val, config.preprocessing), batch_size=config.batch_size,
                                         num_workers=workers, collate_fn=collate, pin_memory=pin)
        self.unreadable: set[str] = set()
        self.last_val: dict | None = None
        self.started = self.saved_at = time.monotonic()
        self.loss_sum, self.loss_steps, self.logged_at = torch.zeros((), device=self.device), 0, time.monotonic()

    # ------------------------------------------------------------------ the loop

    def fit(self) -> dict:
        c, p = self.config, self.progress
        if self.topology.main:
            self.out.mkdir(parents=True, exist_ok=True)
            if not c.resume:  # a fresh run's curves start clean, even over a run that died before saving
                (self.out / "metrics.jsonl").unlink(missing_ok=True)
            t, v = self.data.summary["train"], self.data.summary["val"]
            self.say(f"train: {t['real']} real + {t['fake']} fake; val: {v['real']} real + {v['fake']} fake; "
                     f"{self.topology.world} process(es) on {self.device}, batch {c.batch_size}"
                     + (f"; resuming at step {p.step}" if c.resume else ""))
        stop = self.budget_spent()
        while not stop:
            if p.epoch >= c.epochs:
                stop = "epochs"
                break
            self.sampler.set_epoch(p.epoch)
            self.sampler.skip = p.batch_in_epoch * self.items_per_batch
            bar = tqdm(self.train_loader, desc=f"epoch {p.epoch}", unit="batch", leave=False,
                       disable=not (c.progress and self.topology.main))
            for batch in bar:
                self.note_unreadable(batch)
                # All processes skip an all-unreadable batch together, or DDP's collectives would hang.
                trained = not any_rank(len(batch.labels) == 0, self.topology)
                if trained:
                    self.train_step(batch)
                    bar.set_postfix(step=p.step, lr=f"{p.lr:.0e}", refresh=False)
                p.batch_in_epoch += 1
                if p.batch_in_epoch >= self.batches_per_epoch:
                    break  # the epoch's own validation follows
                if c.val_every and trained and p.step % c.val_every == 0:
                    stop = self.end_round()
                elif self.save_due():
                    self.save_between_rounds()
                stop = stop or self.budget_spent()
                if stop:
                    break
            bar.close()
            if p.batch_in_epoch >= self.batches_per_epoch:  # also when a changed dataset shortened the epoch
                p.epoch, p.batch_in_epoch = p.epoch + 1, 0
                stop = self.end_round() or self.budget_spent()
        if self.rounds_at != p.step:
            self.end_round()  # stopped between validations: save where it stands
        return self.finish(stop)

    def train_step(self, batch: Batch) -> None:
        c, p = self.config, self.progress
        logits = self.net(self.model_input(batch.crops))
        loss = F.binary_cross_entropy_with_logits(logits, batch.labels.to(self.device, non_blocking=True))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        p.step += 1
        self.loss_sum += loss.detach()
        self.loss_steps += 1
        if self.topology.main and p.step % c.log_every == 0:
            now = time.monotonic()
            self.log("train", loss=self.loss_sum.item() / self.loss_steps, lr=p.lr,
                     images_per_s=round(self.loss_steps * c.batch_size / (now - self.logged_at), 2))
            self.loss_sum.zero_()
            self.loss_steps, self.logged_at = 0, now

    def model_input(self, crops: torch.Tensor) -> torch.Tensor:
        x = to_model_input(crops.to(self.device, non_blocking=True), self.config.preprocessing)
        return x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x

    # ------------------------------------------------------------------ validation, lr schedule, checkpoints

    @torch.no_grad()
    def validate(self) -> dict:
        self.model.eval()
        scores, labels, loss = [], [], 0.0
        for batch in self.val_loader:
            self.note_unreadable(batch)
            if not len(batch.labels):
                continue
            logits = self.logits(self.model_input(batch.crops)).cpu()
            loss += F.binary_cross_entropy_with_logits(logits, batch.labels, reduction="sum").item()
            scores.append(torch.sigmoid(logits))
            labels.append(batch.labels)
        self.model.train()
        y, s = (torch.cat(labels).numpy(), torch.cat(scores).numpy()) if labels else ([], [])
        return {**metrics(y, s), "loss": loss / max(1, len(y))}

    def end_round(self) -> str:
        """Validate (rank 0), step the lr schedule, write checkpoints; returns a stop reason or ""."""
        p = self.progress
        stop, improved, val = "", False, None
        if self.val_loader is not None:
            val = self.last_val = self.validate()
            improved = val["ap"] is not None and (p.best_ap is None or val["ap"] > p.best_ap)
            if improved:
                p.best_ap = val["ap"]
            self.log("val", **val)
            self.say(f"step {p.step}: val AP {fmt(val['ap'])}, acc {fmt(val['acc'])}, loss {val['loss']:.4f}")
            stop = self.plateau(val)
        lr, stopping = from_main([p.lr, float(bool(stop))], self.topology)
        p.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.topology.main:
            self.save(val, improved)
        self.rounds_at, self.saved_at = p.step, time.monotonic()
        return "lr_below_min" if stopping else ""

    def save_due(self) -> bool:
        every = self.config.save_every_minutes
        return bool(every) and any_rank((time.monotonic() - self.saved_at) / 60 >= every, self.topology)

    def save_between_rounds(self) -> None:
        """last.pt and its state without validating: a run killed between validations resumes from here
        (same data order: the sampler skips the batches this epoch already trained on)."""
        if self.topology.main:
            save_run(self.out, self.model, self.optimizer, self.progress, self.config, self.provenance(self.last_val),
                     improved=False)
        self.saved_at = time.monotonic()

    def plateau(self, val: dict) -> str:
        """Step the lr schedule (``schedule.step_schedule``) and say what changed; returns a stop reason or ""."""
        c, p = self.config, self.progress
        change = step_schedule(p, val[c.plateau_metric], c)
        if change:
            self.log("lr", lr=p.lr)
        if change == LR_DROPPED:
            self.say(f"step {p.step}: no {c.plateau_metric} gain in {c.patience} validations, lr -> {p.lr:g}")
        return "lr_below_min" if change == LR_BELOW_MIN else ""

    def provenance(self, val: dict | None) -> dict:
        p = self.progress
        provenance = {"trainer": "ipdscan.train.loop, CNNDetection recipe", "config": asdict(self.config),
                      "world_size": self.topology.world, "step": p.step, "epoch": p.epoch, "lr": p.lr,
                      "metrics": {"val": val, "best_val_ap": p.best_ap}, "data": self.data.summary, "versions": versions(),
                      "initial_weights": self.initial_weights,
                      "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        return json.loads(json.dumps(provenance))  # plain data only, so the checkpoint loads with weights_only

    def save(self, val: dict | None, improved: bool) -> None:
        save_run(self.out, self.model, self.optimizer, self.progress, self.config, self.provenance(val), improved)

    def initialise(self, init_from: str) -> None:
        """Start from another checkpoint's weights (same variant and preprocessing); step, optimizer and lr start anew."""
        checkpoint = load_weights(init_from, self.model.config, self.config.preprocessing)
        self.model.load_state_dict(checkpoint.model.state_dict())
        self.initial_weights = {"name": checkpoint.name, "sha256": checkpoint.sha256}

    def restore(self, resume: str) -> None:
        checkpoint, state = load_run(resume, self.model.config, self.config.preprocessing)
        self.model.load_state_dict(checkpoint.model.state_dict())
        self.initial_weights = checkpoint.provenance.get("initial_weights")
        self.optimizer.load_state_dict(state["optimizer"])  # also moves Adam's moments to the model's device
        self.progress = Progress(**state["progress"])
        torch.set_rng_state(state["torch_rng"])
        self.rounds_at = self.progress.step

    # ------------------------------------------------------------------ bookkeeping

    def time_up(self) -> bool:
        return bool(self.config.max_minutes) and (time.monotonic() - self.started) / 60 >= self.config.max_minutes

    def budget_spent(self) -> str:
        if self.config.max_steps is not None and self.progress.step >= self.config.max_steps:
            return "max_steps"
        return "max_minutes" if any_rank(self.time_up(), self.topology) else ""

    def note_unreadable(self, batch: Batch) -> None:
        for bad in batch.unreadable:
            if bad.path not in self.unreadable:
                self.unreadable.add(bad.path)
                self.say(f"skipping unreadable {bad.path}: {bad.reason}", every_rank=True)

    def log(self, event: str, **fields) -> None:
        if self.topology.main:
            p = self.progress
            append_jsonl(self.out / "metrics.jsonl", {"event": event, "step": p.step, "epoch": p.epoch,
                                                      "time": round(time.time(), 3), **fields})

    def say(self, message: str, every_rank: bool = False) -> None:
        if self.topology.main or every_rank:
            prefix = f"[rank {self.topology.rank}] " if self.topology.world > 1 else ""
            tqdm.write(prefix + message, file=sys.stderr)

    def finish(self, stop: str) -> dict:
        unreadable = self.unreadable
        if self.topology.world > 1:
            gathered = [None] * self.topology.world
            dist.all_gather_object(gathered, sorted(unreadable))
            unreadable = {path for paths in gathered for path in paths}
        p = self.progress
        best = self.out / "best.pt"
        summary = {"out": str(self.out), "stopped": stop, "steps": p.step, "epochs": p.epoch, "lr": p.lr,
                   "best_val_ap": p.best_ap, "last_val": self.last_val,
                   "checkpoint": str(best if best.exists() else self.out / "last.pt"),
                   "train_images": len(self.data.train), "val_images": len(self.data.val),
                   "unreadable": len(unreadable), "minutes": round((time.monotonic() - self.started) / 60, 2)}
        if self.topology.main:
            self.log("end", **{k: v for k, v in summary.items() if k not in ("last_val", "steps", "epochs")})
            plot_training(self.out / "metrics.jsonl", self.out / "curves.png")
            self.say(f"stopped ({stop}) at step {p.step}; best val AP {fmt(p.best_ap)}; {summary['checkpoint']}")
        return summary


def fmt(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"
