"""One process or many: torchrun's environment -> a process group (nccl on CUDA, gloo on CPU)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ipdscan.score import resolve_device


@dataclass(frozen=True)
class Topology:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0 validates, logs and writes every file."""
        return self.rank == 0


def setup(device: str = "auto") -> Topology:
    """Join torchrun's process group when WORLD_SIZE > 1; each CUDA process takes the GPU of its LOCAL_RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    resolved = resolve_device(device)
    if world == 1:
        return Topology(0, 1, resolved)
    if resolved.type == "cuda":
        resolved = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(resolved)
    # Rank 0 validates while the others wait at the next collective: allow long validations.
    dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo", timeout=timedelta(hours=2))
    return Topology(dist.get_rank(), world, resolved)


def teardown(topology: Topology) -> None:
    if topology.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def from_main(values: list[float], topology: Topology) -> list[float]:
    """Rank 0's values on every rank (e.g. its learning rate and stop decision after validating)."""
    if topology.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=topology.device)
    dist.broadcast(t, src=0)
    return t.tolist()


def any_rank(flag: bool, topology: Topology) -> bool:
    """True on every rank when it is true on one: decisions that must not split the processes."""
    if topology.world == 1:
        return flag
    t = torch.tensor([float(flag)], device=topology.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
