"""A run's DataLoaders: the training stream (single images, or real/fake pairs with ``pair_sync``; each rank its
shard of every epoch, resumable mid-epoch through ``EpochSampler.skip``) and rank 0's validation loader."""
from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import DataLoader

from ipdscan.model.runtime import default_workers

from .config import TrainConfig, TrainError
from .data import EpochSampler, LabelledImages, Split, collate
from .pairs import PairedImages, collate_pairs, pair_up
from .topology import Topology


@dataclass
class Loaders:
    train: DataLoader
    sampler: EpochSampler  # set_epoch and skip before each epoch
    items_per_batch: int  # loader items per batch on this rank: images, or pairs with pair_sync
    batches_per_epoch: int
    val: DataLoader | None  # rank 0's only, and only when there are validation images


def per_rank_batch(config: TrainConfig, topology: Topology) -> int:
    """Images per step on each rank; TrainError when the batch does not split over the processes (into pairs too,
    with pair_sync). Checked before any data is read."""
    if config.batch_size % topology.world:
        raise TrainError(f"batch_size {config.batch_size} does not split over {topology.world} processes")
    per_rank = config.batch_size // topology.world
    if config.pair_sync and per_rank < 2:
        raise TrainError(f"--pair-sync needs at least 2 images per process; batch_size {config.batch_size} over "
                         f"{topology.world} processes gives {per_rank}")
    return per_rank


def make_loaders(data: Split, config: TrainConfig, topology: Topology, per_rank: int) -> Loaders:
    """TrainError when the training images give no full batch of ``config.batch_size``."""
    workers = default_workers(config.workers, topology.device.type)
    if config.workers is None and workers:
        workers = max(1, workers // topology.world)  # processes on one machine share its cores
    if config.pair_sync:  # a loader item is a pair: half as many items make a batch
        train_set = PairedImages(pair_up(data.train, config.seed), config.preprocessing, config.augmentation(),
                                 config.seed)
        items_per_batch, train_collate = per_rank // 2, collate_pairs
    else:
        train_set = LabelledImages(data.train, config.preprocessing, config.augmentation(), config.seed)
        items_per_batch, train_collate = per_rank, collate
    sampler = EpochSampler(train_set, topology.world, topology.rank, config.seed)
    batches_per_epoch = sampler.num_samples // items_per_batch
    if not batches_per_epoch:
        raise TrainError(f"{len(train_set)} training images give no full batch of {config.batch_size}: "
                         "lower batch_size or add images")
    pin = topology.device.type == "cuda"
    train = DataLoader(train_set, batch_size=items_per_batch, sampler=sampler, drop_last=True, num_workers=workers,
                       collate_fn=train_collate, pin_memory=pin)
    val = None
    if topology.main and data.val:
        val = DataLoader(LabelledImages(data.val, config.preprocessing), batch_size=config.batch_size,
                         num_workers=workers, collate_fn=collate, pin_memory=pin)
    return Loaders(train, sampler, items_per_batch, batches_per_epoch, val)
