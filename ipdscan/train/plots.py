"""The training curve: loss, validation AP and accuracy against step, from a run's metrics.jsonl."""
from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state


def read_events(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_training(metrics_jsonl: str | Path, png_path: str | Path) -> None:
    events = read_events(metrics_jsonl)
    train = [event for event in events if event["event"] == "train"]
    val = [event for event in events if event["event"] == "val"]
    fig = Figure(figsize=(10, 4), layout="constrained")
    loss_ax, val_ax = fig.subplots(1, 2)
    loss_ax.plot([event["step"] for event in train], [event["loss"] for event in train], label="train")
    if val:
        loss_ax.plot([event["step"] for event in val], [event["loss"] for event in val], marker="o", label="val")
        for key, label in (("ap", "val AP"), ("acc", "val acc")):
            points = [(event["step"], event[key]) for event in val if event[key] is not None]
            if points:
                val_ax.plot(*zip(*points), marker="o", label=label)
        val_ax.legend()
    loss_ax.set(xlabel="step", ylabel="BCE loss", title="loss")
    loss_ax.legend()
    val_ax.set(xlabel="step", ylim=(0, 1.02), title="validation")
    for ax in (loss_ax, val_ax):
        ax.grid(alpha=0.3)
    fig.savefig(png_path, dpi=120)
