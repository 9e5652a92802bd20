"""Scans launched by torchrun: each process takes one shard and writes a part; rank 0 merges the parts."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch


@dataclass(frozen=True)
class ScanGroup:
    rank: int
    world_size: int
    local_rank: int

    @classmethod
    def from_env(cls) -> "ScanGroup | None":
        """The torchrun process group this scan runs in, or None for a plain single-process scan."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return None
        return cls(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank + 1, self.world_size

    def device(self, requested: str) -> str:
        """``auto`` means this process's own GPU (cuda:LOCAL_RANK) when there are GPUs."""
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
        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=timedelta(days=7))
        dist.barrier()

    def finish(self) -> None:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()
