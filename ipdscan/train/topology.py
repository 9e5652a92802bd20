"""Training in one process or many: ``Topology`` (this process's rank, the world, its device), set up from
torchrun's environment and group (``ipdscan.scanning.torchrun``: nccl on CUDA, gloo on CPU), and the two collectives
by which every rank follows rank 0's decisions."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ipdscan.model.detector import resolve_device
from ipdscan.scanning import torchrun


@dataclass(frozen=True)
class Topology:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0 validates, logs and writes every file."""
        return self.rank == 0


def this_process(device: str = "auto") -> Topology:
    """Join torchrun's process group when there are several processes; each CUDA process takes the GPU of its
    LOCAL_RANK."""
    launch = torchrun.Launch.from_env()
    resolved = resolve_device(device)
    if not launch.launched:
        return Topology(0, 1, resolved)
    if resolved.type == "cuda":
        resolved = torch.device("cuda", launch.local_rank)
        torch.cuda.set_device(resolved)
    # Rank 0 validates while the others wait at the next collective: allow long validations.
    torchrun.join("nccl" if resolved.type == "cuda" else "gloo", timedelta(hours=2))
    return Topology(dist.get_rank(), launch.world_size, resolved)


def leave_group(topology: Topology) -> None:
    if topology.world > 1:
        torchrun.leave()


def from_main(values: list[float], topology: Topology) -> list[float]:
    """Rank 0's values on every rank (e.g. its learning rate and stop decision after validating)."""
    if topology.world == 1:
        return values
    broadcast = torch.tensor(values, dtype=torch.float64, device=topology.device)
    dist.broadcast(broadcast, src=0)
    return broadcast.tolist()


def any_rank(flag: bool, topology: Topology) -> bool:
    """True on every rank when it is true on one: decisions that must not split the processes."""
    if topology.world == 1:
        return flag
    reduced = torch.tensor([float(flag)], device=topology.device)
    dist.all_reduce(reduced, op=dist.ReduceOp.MAX)
    return bool(reduced.item())


def union_over_ranks(paths: set[str], topology: Topology) -> set[str]:
    """Every rank's ``paths`` together, on every rank."""
    if topology.world == 1:
        return paths
    gathered = [None] * topology.world
    dist.all_gather_object(gathered, sorted(paths))
    return {path for rank_paths in gathered for path in rank_paths}
