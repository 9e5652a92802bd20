"""Training data: labelled folders -> (path, label, generator) samples -> uint8 crops.

Layouts (CNNSpot, GenImage, flat 0_real/1_fake) are discovered by ``ipdscan.eval.labelled.labelled_images``:
labels come from folder names, never from sort order. Per root, train/ and unsplit folders train
and val/ folders validate; test/ folders are left for ``ipdscan eval``. A root without val/ gives
``val_split`` of its images to validation, chosen by a hash of (seed, generator, file stem), so the
split is stable across runs and machines and keeps a real/fake pair with one stem together.
"""
from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from ipdscan.eval.labelled import DatasetError, Unreadable, guarded, labelled_images, read_pixels
from ipdscan.model.preprocess import Preprocessing

from .augment import Augmentation, train_view, val_view


@dataclass(frozen=True)
class Sample:
    path: str
    label: int  # 0 real, 1 AI-generated
    generator: str


@dataclass
class Split:
    train: list[Sample]
    val: list[Sample]
    summary: dict  # counts per split, label and generator: goes into checkpoint provenance


def held_out(seed: int, sample: Sample, fraction: float) -> bool:
    key = f"{seed}:{sample.generator}:{Path(sample.path).stem}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64 < fraction


def labelled_samples(root: str) -> list[tuple[str, Sample]]:
    """(split, sample) for every image in ``root``'s labelled folders; split is train, val, test or "" (unsplit).
    DatasetError when ``root`` has no labelled folders."""
    return [(folder.split, Sample(path, folder.label, folder.generator))
            for folder, paths in labelled_images(root) for path in paths]


def split_roots(roots: list[str], val_split: float, seed: int) -> Split:
    """Gather train / val samples from every root. Raises DatasetError when there is nothing to train on."""
    train, val, sources = [], [], {}
    for root in roots:
        found = labelled_samples(root)
        samples = {split: [sample for folder_split, sample in found if folder_split in splits]
                   for split, splits in (("train", ("train", "")), ("val", ("val",)))}
        if samples["val"]:
            sources[str(root)] = "val folders"
        elif val_split > 0:
            samples["val"] = [sample for sample in samples["train"] if held_out(seed, sample, val_split)]
            samples["train"] = [sample for sample in samples["train"] if not held_out(seed, sample, val_split)]
            sources[str(root)] = f"{val_split:g} of its images (seed {seed})"
        else:
            sources[str(root)] = "none"
        train += samples["train"]
        val += samples["val"]
    labels = Counter(sample.label for sample in train)
    if not labels[0] or not labels[1]:
        raise DatasetError(f"training needs real and fake images; found {labels[0]} real and {labels[1]} fake "
                           f"in train/ or unsplit labelled folders below {', '.join(map(str, roots))}")
    return Split(train, val, summarise(train, val, sources))


def summarise(train: list[Sample], val: list[Sample], sources: dict) -> dict:
    def counts(samples):
        per_generator = Counter((sample.generator, sample.label) for sample in samples)
        generators = dict.fromkeys(sample.generator for sample in samples)
        return {"real": sum(per_generator[name, 0] for name in generators),
                "fake": sum(per_generator[name, 1] for name in generators),
                "generators": {name: {"real": per_generator[name, 0], "fake": per_generator[name, 1]}
                               for name in generators}}
    return {"train": counts(train), "val": counts(val), "val_source": sources}


class LabelledImages(Dataset):
    """Item -> (uint8 crop, label), or ``Unreadable`` (the collate drops and counts it).

    With an ``augmentation`` the keys are (index, epoch) pairs from ``EpochSampler`` and each view is
    seeded by (seed, epoch, index); without one, keys are plain indices and views are centre crops.
    """

    def __init__(self, samples: list[Sample], preprocessing: Preprocessing,
                 augmentation: Augmentation | None = None, seed: int = 0):
        self.samples, self.preprocessing, self.augmentation, self.seed = samples, preprocessing, augmentation, seed

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        sample = self.samples[index]
        if self.augmentation is None:
            view = guarded(lambda path: val_view(read_pixels(path), self.preprocessing), sample.path)
        else:
            rng = np.random.default_rng([self.seed, epoch, index])
            view = guarded(lambda path: train_view(read_pixels(path), self.augmentation, self.preprocessing, rng), sample.path)
        return view if isinstance(view, Unreadable) else (view, sample.label)


@dataclass
class Batch:
    crops: torch.Tensor  # (B, 3, crop, crop) uint8
    labels: torch.Tensor  # (B,) float32
    unreadable: list[Unreadable]

    def pin_memory(self):
        return Batch(self.crops.pin_memory(), self.labels.pin_memory(), self.unreadable)


def collate(items) -> Batch:
    good = [item for item in items if not isinstance(item, Unreadable)]
    crops = torch.stack([view for view, _ in good]) if good else torch.empty(0, 3, 0, 0, dtype=torch.uint8)
    labels = torch.tensor([label for _, label in good], dtype=torch.float32)
    return Batch(crops, labels, [item for item in items if isinstance(item, Unreadable)])


class EpochSampler(DistributedSampler):
    """A DistributedSampler (seeded shuffle, one shard per rank) that yields (index, epoch) keys.

    ``skip`` drops this rank's first items of the epoch, so a resumed run continues mid-epoch with
    the batches it had not yet seen. Works unchanged in a single process (num_replicas=1).
    """

    def __init__(self, dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.skip = 0

    def __iter__(self):
        return ((index, self.epoch) for index in itertools.islice(super().__iter__(), self.skip, None))

    def __len__(self):
        return max(0, super().__len__() - self.skip)


__all__ = ["Batch", "EpochSampler", "LabelledImages", "Sample", "Split", "collate", "labelled_samples", "split_roots"]
