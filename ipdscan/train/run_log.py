"""What a run tells as it goes: one JSON line per event in its metrics.jsonl (rank 0 writes them) and messages on
stderr (rank 0's, or every rank's with its rank in front), printed around the progress bars."""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .schedule import Progress
from .topology import Topology


class RunLog:
    def __init__(self, path: Path, topology: Topology):
        self.path, self.topology = path, topology

    def record(self, event: str, progress: Progress, **fields) -> None:
        """One metrics.jsonl line (rank 0): the event, where the run stands, and its fields."""
        if self.topology.main:
            line = {"event": event, "step": progress.step, "epoch": progress.epoch, "time": round(time.time(), 3),
                    **fields}
            with self.path.open("a") as metrics_file:
                metrics_file.write(json.dumps(line) + "\n")

    def say(self, message: str, every_rank: bool = False) -> None:
        if self.topology.main or every_rank:
            prefix = f"[rank {self.topology.rank}] " if self.topology.world > 1 else ""
            tqdm.write(prefix + message, file=sys.stderr)


def metric_text(value: float | None) -> str:
    """A metric as the messages show it: four decimals, or "-" when there is none (no validation, NaN)."""
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"
