"""torchrun's side of a process, for scan and train alike: who this process is (``Launch.from_env``: RANK,
WORLD_SIZE, LOCAL_RANK, read here only) and the process group it joins and leaves (``join``, ``leave``).

Light: torch.distributed loads only when a group is joined, so a single-process scan never pays for it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Launch:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # the process's index on its machine: which GPU it takes

    @classmethod
    def from_env(cls) -> Launch:
        """What torchrun set for this process; rank 0 of 1 when it was not started by torchrun."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def launched(self) -> bool:
        """Several processes, started by torchrun."""
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes the report or the run, and prints."""
        return self.rank == 0


def join(backend: str, timeout: timedelta) -> None:
    """Join torchrun's process group (once; a second call finds it joined). nccl for CUDA, gloo for CPU."""
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timeout)


def leave() -> None:
    import torch.distributed as dist
    if dist.is_initialized():
        dist.destroy_process_group()
