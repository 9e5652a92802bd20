"""Scans launched by torchrun: each process takes one shard and writes a part; rank 0 merges the parts.
Who the process is and its process group come from ``torchrun.py``, which training shares. torch loads only in a
torchrun rank: every scan asks ``from_env``."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from .torchrun import Launch, join, leave


@dataclass(frozen=True)
class ScanGroup:
    rank: int
    world_size: int
    local_rank: int

    @classmethod
    def from_env(cls) -> ScanGroup | None:
        """The torchrun process group this scan runs in, or None for a plain single-process scan."""
        launch = Launch.from_env()
        return cls(launch.rank, launch.world_size, launch.local_rank) if launch.launched else None

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank + 1, self.world_size

    def device(self, requested: str) -> str:
        """``auto`` means this process's own GPU (cuda:LOCAL_RANK) when there are GPUs."""
        import torch
        if requested == "auto" and torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return requested

    def part(self, out: Path, rank: int | None = None) -> Path:
        return out.with_name(f".{out.name}.part{self.rank if rank is None else rank}.jsonl")

    def parts(self, out: Path) -> list[Path]:
        return [self.part(out, rank) for rank in range(self.world_size)]

    def wait_for_all(self) -> None:
        """Barrier over gloo (CPU-only, always available): long scans need a long timeout."""
        import torch.distributed as dist
        join("gloo", timedelta(days=7))
        dist.barrier()

    def finish(self) -> None:
        leave()
