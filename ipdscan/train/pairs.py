"""Pair-synced training data ("batched syncing", Rajan et al., ICLR 2025): each real and its fake in the same
batch, through the same view: one crop position, flip, blur, down-scale and JPEG draw for both.

With aligned pairs (build_corpus writes a real and its fake under one file name in one generator folder) the
only difference left inside a pair is the generator's trace, so the gradient cannot follow content, framing or
augmentation. Reals and fakes without a namesake (unaligned families such as the StyleGAN2 faces) are paired at
random within their generator folder, seeded, so they still share their augmentation; any left over trains alone.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ipdscan.eval.labelled import Unreadable, guarded, read_pixels
from ipdscan.model.preprocess import Preprocessing

from .augment import Augmentation, train_view
from .data import Batch, Sample, collate


def pair_up(samples: list[Sample], seed: int) -> list[tuple[Sample, ...]]:
    """(real, fake) pairs by file stem within a generator folder, then seeded random pairs, then singles."""
    by_folder: dict[tuple[str, str], dict[int, dict[str, Sample]]] = defaultdict(lambda: {0: {}, 1: {}})
    for sample in samples:  # the folder holding 0_real/1_fake: pairs never cross generators or splits
        path = Path(sample.path)
        by_folder[sample.generator, str(path.parent.parent)][sample.label][path.stem] = sample
    out: list[tuple[Sample, ...]] = []
    for key, classes in sorted(by_folder.items()):
        reals, fakes = classes[0], classes[1]
        stems = sorted(reals.keys() & fakes.keys())
        out += [(reals[stem], fakes[stem]) for stem in stems]
        folder = "/".join(Path(key[1]).parts[-2:])  # split/generator: the same pairing on every machine
        rng = np.random.default_rng([seed, int.from_bytes(hashlib.sha256(folder.encode()).digest()[:8], "little")])
        lone_reals = [reals[stem] for stem in sorted(reals.keys() - fakes.keys())]
        lone_fakes = [fakes[stem] for stem in sorted(fakes.keys() - reals.keys())]
        lone_reals = [lone_reals[i] for i in rng.permutation(len(lone_reals))]
        lone_fakes = [lone_fakes[i] for i in rng.permutation(len(lone_fakes))]
        paired = min(len(lone_reals), len(lone_fakes))
        out += list(zip(lone_reals[:paired], lone_fakes[:paired]))
        out += [(single,) for single in lone_reals[paired:] + lone_fakes[paired:]]
    return out


class PairedImages(Dataset):
    """Item -> [(uint8 crop, label), ...] for one pair (or a single), each view drawn from the same seed.

    Keys are (index, epoch) from ``EpochSampler``; the views are seeded by (seed, epoch, index) as
    ``LabelledImages``'s are, so a resumed run sees the same views."""

    def __init__(self, pairs: list[tuple[Sample, ...]], preprocessing: Preprocessing, augmentation: Augmentation,
                 seed: int = 0):
        self.pairs, self.preprocessing, self.augmentation, self.seed = pairs, preprocessing, augmentation, seed

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, key):
        index, epoch = key
        items = []
        for sample in self.pairs[index]:
            rng = np.random.default_rng([self.seed, epoch, index])  # the same draws for both members
            view = guarded(lambda path: train_view(read_pixels(path), self.augmentation, self.preprocessing, rng),
                           sample.path)
            items.append(view if isinstance(view, Unreadable) else (view, sample.label))
        return items


def collate_pairs(items) -> Batch:
    """A batch of pairs as one flat batch of images (an unreadable member drops out alone)."""
    return collate([view for pair in items for view in pair])
