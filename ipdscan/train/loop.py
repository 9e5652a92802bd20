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

The run's parts: ``config`` (TrainConfig), ``data`` and ``loaders`` (samples, split, batches), ``schedule``
(Progress and the learning-rate plateau), ``validation``, ``checkpoints`` (the run directory's files and the run
record), ``run_log`` (metrics.jsonl, messages), ``topology`` (ranks), and here the loop (``Run``).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ipdscan.model.ipdnet import IPDNet
from ipdscan.model.torch_preprocess import to_model_input

from .checkpoints import resume_into, run_record, save_run, start_from
from .config import TrainConfig, TrainError
from .data import Batch, split_roots
from .loaders import make_loaders, per_rank_batch
from .plots import plot_training
from .run_log import RunLog, metric_text
from .schedule import LR_BELOW_MIN, LR_DROPPED, Progress, step_schedule
from .topology import Topology, any_rank, from_main, leave_group, this_process, union_over_ranks
from .validation import validate


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

    def forward(self, images):  # (B, 3, S, S) normalised -> (B,) float32 logits
        return self.model.forward_pooled(images, bf16_from=0 if self.bf16 else None)


class Run:
    def __init__(self, config: TrainConfig, topology: Topology):
        self.config, self.topology, self.device = config, topology, topology.device
        self.out = Path(config.out)
        self.run_log = RunLog(self.out / "metrics.jsonl", topology)
        self.per_rank = per_rank_batch(config, topology)
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
        self.initial_weights = None  # name and sha256 of the checkpoint a fine-tuning run started from
        if config.resume:
            self.progress, self.initial_weights = resume_into(self.model, self.optimizer, config.resume,
                                                              config.preprocessing)
            self.rounds_at = self.progress.step
        elif config.init_from:
            self.initial_weights = start_from(self.model, config.init_from, config.preprocessing)
        self.logits = Logits(self.model, bf16=self.device.type == "cuda" or config.cpu_bf16)
        self.net = self.logits if topology.world == 1 else DistributedDataParallel(
            self.logits, device_ids=[self.device.index] if self.device.type == "cuda" else None)

        self.loaders = make_loaders(self.data, config, topology, self.per_rank)
        self.unreadable: set[str] = set()
        self.last_val: dict | None = None
        self.started = self.saved_at = time.monotonic()
        self.loss_sum, self.loss_steps, self.logged_at = torch.zeros((), device=self.device), 0, time.monotonic()

    # ------------------------------------------------------------------ the loop

    def fit(self) -> dict:
        config, progress = self.config, self.progress
        if self.topology.main:
            self.out.mkdir(parents=True, exist_ok=True)
            if not config.resume:  # a fresh run's curves start clean, even over a run that died before saving
                self.run_log.path.unlink(missing_ok=True)
            counts = self.data.summary
            self.say(f"train: {counts['train']['real']} real + {counts['train']['fake']} fake; "
                     f"val: {counts['val']['real']} real + {counts['val']['fake']} fake; "
                     f"{self.topology.world} process(es) on {self.device}, batch {config.batch_size}"
                     + (f"; resuming at step {progress.step}" if config.resume else ""))
        stop = self.budget_spent()
        while not stop:
            if progress.epoch >= config.epochs:
                stop = "epochs"
                break
            self.loaders.sampler.set_epoch(progress.epoch)
            self.loaders.sampler.skip = progress.batch_in_epoch * self.loaders.items_per_batch
            bar = tqdm(self.loaders.train, desc=f"epoch {progress.epoch}", unit="batch", leave=False,
                       disable=not (config.progress and self.topology.main))
            for batch in bar:
                self.note_unreadable(batch)
                # All processes skip an all-unreadable batch together, or DDP's collectives would hang.
                trained = not any_rank(len(batch.labels) == 0, self.topology)
                if trained:
                    self.train_step(batch)
                    bar.set_postfix(step=progress.step, lr=f"{progress.lr:.0e}", refresh=False)
                progress.batch_in_epoch += 1
                if progress.batch_in_epoch >= self.loaders.batches_per_epoch:
                    break  # the epoch's own validation follows
                if config.val_every and trained and progress.step % config.val_every == 0:
                    stop = self.end_round()
                elif self.save_due():
                    self.save_between_rounds()
                stop = stop or self.budget_spent()
                if stop:
                    break
            bar.close()
            if progress.batch_in_epoch >= self.loaders.batches_per_epoch:  # also when a changed dataset shortened the epoch
                progress.epoch, progress.batch_in_epoch = progress.epoch + 1, 0
                stop = self.end_round() or self.budget_spent()
        if self.rounds_at != progress.step:
            self.end_round()  # stopped between validations: save where it stands
        return self.finish(stop)

    def train_step(self, batch: Batch) -> None:
        logits = self.net(self.model_input(batch.crops))
        loss = F.binary_cross_entropy_with_logits(logits, batch.labels.to(self.device, non_blocking=True))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.progress.step += 1
        self.loss_sum += loss.detach()
        self.loss_steps += 1
        if self.topology.main and self.progress.step % self.config.log_every == 0:
            now = time.monotonic()
            self.log("train", loss=self.loss_sum.item() / self.loss_steps, lr=self.progress.lr,
                     images_per_s=round(self.loss_steps * self.config.batch_size / (now - self.logged_at), 2))
            self.loss_sum.zero_()
            self.loss_steps, self.logged_at = 0, now

    def model_input(self, crops: torch.Tensor) -> torch.Tensor:
        images = to_model_input(crops.to(self.device, non_blocking=True), self.config.preprocessing)
        return images.contiguous(memory_format=torch.channels_last) if self.config.channels_last else images

    # ------------------------------------------------------------------ validation, lr schedule, checkpoints

    def end_round(self) -> str:
        """Validate (rank 0), step the lr schedule, write checkpoints; returns a stop reason or ""."""
        progress = self.progress
        stop, improved, val = "", False, None
        if self.loaders.val is not None:
            val = self.last_val = validate(self.logits, self.loaders.val, self.model_input, self.note_unreadable)
            improved = val["ap"] is not None and (progress.best_ap is None or val["ap"] > progress.best_ap)
            if improved:
                progress.best_ap = val["ap"]
            self.log("val", **val)
            self.say(f"step {progress.step}: val AP {metric_text(val['ap'])}, acc {metric_text(val['acc'])}, "
                     f"loss {val['loss']:.4f}")
            stop = self.plateau(val)
        lr, stopping = from_main([progress.lr, float(bool(stop))], self.topology)
        progress.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.topology.main:
            self.save(val, improved)
        self.rounds_at, self.saved_at = progress.step, time.monotonic()
        return "lr_below_min" if stopping else ""

    def save_due(self) -> bool:
        every = self.config.save_every_minutes
        return bool(every) and any_rank((time.monotonic() - self.saved_at) / 60 >= every, self.topology)

    def save_between_rounds(self) -> None:
        """last.pt and its state without validating: a run killed between validations resumes from here
        (same data order: the sampler skips the batches this epoch already trained on)."""
        if self.topology.main:
            self.save(self.last_val, improved=False)
        self.saved_at = time.monotonic()

    def plateau(self, val: dict) -> str:
        """Step the lr schedule (``schedule.step_schedule``) and say what changed; returns a stop reason or ""."""
        config, progress = self.config, self.progress
        change = step_schedule(progress, val[config.plateau_metric], config)
        if change:
            self.log("lr", lr=progress.lr)
        if change == LR_DROPPED:
            self.say(f"step {progress.step}: no {config.plateau_metric} gain in {config.patience} validations, "
                     f"lr -> {progress.lr:g}")
        return "lr_below_min" if change == LR_BELOW_MIN else ""

    def provenance(self, val: dict | None) -> dict:
        return run_record(self.config, self.topology.world, self.progress, val, self.data.summary, self.initial_weights)

    def save(self, val: dict | None, improved: bool) -> None:
        save_run(self.out, self.model, self.optimizer, self.progress, self.config, self.provenance(val), improved)

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
        self.run_log.record(event, self.progress, **fields)

    def say(self, message: str, every_rank: bool = False) -> None:
        self.run_log.say(message, every_rank)

    def finish(self, stop: str) -> dict:
        unreadable = union_over_ranks(self.unreadable, self.topology)
        progress = self.progress
        best = self.out / "best.pt"
        summary = {"out": str(self.out), "stopped": stop, "steps": progress.step, "epochs": progress.epoch,
                   "lr": progress.lr, "best_val_ap": progress.best_ap, "last_val": self.last_val,
                   "checkpoint": str(best if best.exists() else self.out / "last.pt"),
                   "train_images": len(self.data.train), "val_images": len(self.data.val),
                   "unreadable": len(unreadable), "minutes": round((time.monotonic() - self.started) / 60, 2)}
        if self.topology.main:
            self.log("end", **{key: value for key, value in summary.items() if key not in ("last_val", "steps", "epochs")})
            plot_training(self.run_log.path, self.out / "curves.png")
            self.say(f"stopped ({stop}) at step {progress.step}; best val AP {metric_text(progress.best_ap)}; "
                     f"{summary['checkpoint']}")
        return summary
