"""The data layer eval and train share: labelled folders -> image files -> pixels, read and decoded as a scan does.

Labelled folders are recognised by name, at any depth below a root (``LABELS``):

    CNNSpot    <root>/<generator>[/<class>]/{0_real,1_fake}      (also <root>/{train,val,test}/...)
    GenImage   <root>/<generator>/imagenet_*/{train,val}/{nature,ai}

A *generator* is the first folder below the root, not counting split folders (train / val /
test); everything labelled beneath it is pooled, as CNNDetection pools ProGAN's 20 classes. A
root that holds 0_real/1_fake itself is one generator named after the root. The *group* is the
root's name, so one root per dataset gives Table III's per-dataset averages.

Folders are walked by the scan's walker (``sources.walk_tree``, ``sources.iter_items``: one set of image
extensions and format sniffing, symlink loops walked once), files are read by the scan's reader
(``fetch.read_item``: FIFOs refused, the size cap) and decoded by the scan's decoder (``decode.decode``).
A file that cannot be read or decoded is an ``Unreadable``, counted, never a crashed run.
"""
from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.functional import pil_to_tensor

from ..model.preprocess import Preprocessing, crop
from ..scanning.decode import decode
from ..scanning.fetch import read_item
from ..scanning.item import Item
from ..scanning.sources import iter_items, walk_items
from ..scanning.walk import walk_tree
from .perturbations import Perturbation

LABELS = {"0_real": 0, "nature": 0, "1_fake": 1, "ai": 1}  # by name, never by sort order
SPLITS = ("train", "val", "test")
EVAL_SPLIT_PREFERENCE = ("test", "val", "", "train")  # "" = not under a split folder


class DatasetError(ValueError):
    """A root that holds no usable labelled images; the message names the root and the layouts read."""


@dataclass(frozen=True)
class LabelledFolder:
    path: Path
    label: int  # 0 real, 1 AI-generated
    generator: str
    split: str  # train | val | test | "" (not under a split folder)


def labelled_folders(root: str | Path) -> tuple[list[LabelledFolder], set[tuple[int, int]]]:
    """Every 0_real / 1_fake / nature / ai folder below ``root``, in sorted walk order, and the (device, inode) of
    every folder the walk passed through to find them.

    Walked as a scan walks folders (``sources.walk_tree``): symlinked folders are followed, never round a loop
    nor twice into one folder, and hidden folders are skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    found, walked = [], set()
    for path, info, error in walk_tree(str(root), root.stat(), enter=lambda path: os.path.basename(path) not in LABELS):
        here = Path(path)
        if info is not None and stat.S_ISDIR(info.st_mode):
            walked.add((info.st_dev, info.st_ino))
        if error is not None or not stat.S_ISDIR(info.st_mode) or here.name not in LABELS:
            continue  # everything below a labelled folder carries its label: walk_tree does not enter it
        parents = here.relative_to(root).parts[:-1]
        split = next((part for part in reversed(parents) if part in SPLITS), "")
        names = [part for part in parents if part not in SPLITS]
        found.append(LabelledFolder(here, LABELS[here.name], names[0] if names else root.resolve().name, split))
    return found, walked


def labelled_images(root: str | Path) -> list[tuple[LabelledFolder, list[str]]]:
    """Every labelled folder below ``root`` (``labelled_folders``) with its image files (``image_files``), no file
    counted twice: a label's walk never follows a link back into the layout (``0_real/up -> ..`` would count each
    fake as real too, a link to ``../1_fake`` every fake), and a file found in two folders (hard or symbolic links)
    is kept once, in the folder it really lies in, else in the first. Eval and train would otherwise score it
    twice, under both labels, or train on what validates them. DatasetError when there is no labelled folder.
    """
    folders, walked = labelled_folders(root)
    if not folders:
        raise DatasetError(f"{root}: no labelled folders below it; expected CNNSpot ({{0_real,1_fake}}) "
                           "or GenImage ({nature,ai}) folders at any depth")
    found = []  # (folder, path, the file's (device, inode) or, gone since, its path)
    for folder in folders:
        for path in image_files(folder.path, enter=lambda path: _key(path) not in walked):
            found.append((folder, path, _key(path) or path))
    count = Counter(key for _, _, key in found)
    homes = {}  # a file found more than once -> the folder it really lies in
    for folder, path, key in found:
        if count[key] > 1 and _inside(path, folder.path):
            homes.setdefault(key, folder)
    files: dict[LabelledFolder, list[str]] = {folder: [] for folder in folders}
    kept = set()
    for folder, path, key in found:
        if key not in kept and homes.get(key, folder) == folder:
            files[folder].append(path)
            kept.add(key)
    return list(files.items())


def _key(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _inside(path: str, folder: Path) -> bool:
    """Whether the file ``path`` really lies below ``folder``, links resolved."""
    return Path(os.path.realpath(path)).is_relative_to(folder.resolve())


def image_files(folder: Path, enter: Callable[[str], bool] | None = None) -> list[str]:
    """The image files below ``folder`` that a scan of it would find (by name or first bytes; hidden ones
    skipped; symlink loops walked once), in the scan's order: depth first, sorted by name at each level;
    ``enter`` can keep the walk out of folders below it."""
    try:
        info = os.stat(folder)
    except OSError:
        return []
    if not stat.S_ISDIR(info.st_mode):
        return [item.input for item in iter_items([str(folder)]) if not item.error_code]
    return [item.input for item in walk_items(str(folder), info, enter=enter) if not item.error_code]


@dataclass
class GeneratorSet:
    name: str  # relative to its root: the first folder below it, split folders not counted
    group: str  # the root's name
    real_paths: list[str] = field(default_factory=list)
    fake_paths: list[str] = field(default_factory=list)


def find_generators(roots: Iterable[str | Path]) -> list[GeneratorSet]:
    """One GeneratorSet per generator below each root, from its preferred split (test, val, unsplit, train).

    GenImage keeps train and val side by side: evaluation reads val. Raises DatasetError for a root
    without labelled folders, or whose labelled folders hold no images.
    """
    sets = []
    for root in roots:
        folders = labelled_images(root)
        group = Path(root).resolve().name
        for name in dict.fromkeys(folder.generator for folder, _ in folders):  # first-seen order
            mine = [(folder, paths) for folder, paths in folders if folder.generator == name]
            split = next(split for split in EVAL_SPLIT_PREFERENCE if any(folder.split == split for folder, _ in mine))
            chosen = GeneratorSet(name, group)
            for folder, paths in mine:
                if folder.split == split:
                    (chosen.fake_paths if folder.label else chosen.real_paths).extend(paths)
            if chosen.real_paths or chosen.fake_paths:
                sets.append(chosen)
        if not any(paths for _, paths in folders):  # an empty table and exit 0 would look like a result
            raise DatasetError(f"{root}: its labelled folders hold no image files (e.g. {folders[0][0].path})")
    return sets


def read_pixels(path: str) -> torch.Tensor:
    """(3, H, W) uint8 RGB, read and decoded exactly as a scan reads and decodes the file: EXIF orientation,
    16-bit and palette/alpha handling, the first frame. Evaluating or training on other pixels than the scan
    scores would measure, or teach the model, images it never sees (a rotated phone photo, a darkened 16-bit PNG)."""
    return torch.from_numpy(decode(read_item(Item(path, "file"))).pixels)


class Unreadable(NamedTuple):
    """What a dataset returns for a file it cannot decode; collates drop it and count it."""
    path: str
    reason: str


def guarded(view, path: str) -> torch.Tensor | Unreadable:
    """``view(path)`` -> uint8 crop, or Unreadable on any failure: a bad file costs one image, never the run."""
    try:
        return view(path)
    except Exception as exc:
        return Unreadable(path, (getattr(exc, "message", "") or f"{type(exc).__name__}: {exc}")[:300])


class EvalImages(Dataset):
    """(index, crop) per image: decoded as a scan decodes, optionally perturbed, then the scan's centre crop."""

    def __init__(self, paths: list[str], preprocessing: Preprocessing, perturbation: Perturbation | None = None):
        self.paths, self.preprocessing, self.perturbation = paths, preprocessing, perturbation

    def __len__(self):
        return len(self.paths)

    def view(self, path: str) -> torch.Tensor:
        pixels = read_pixels(path)
        if self.perturbation is not None:
            image = Image.fromarray(pixels.permute(1, 2, 0).numpy())
            pixels = pil_to_tensor(self.perturbation(image))
        return crop(pixels, self.preprocessing)

    def __getitem__(self, index):
        return index, guarded(self.view, self.paths[index])


def collate_indexed(items):
    """[(index, crop | Unreadable)] -> (indices, (B,3,c,c) uint8 crops, [(index, Unreadable)])."""
    good = [(index, view) for index, view in items if not isinstance(view, Unreadable)]
    bad = [(index, view) for index, view in items if isinstance(view, Unreadable)]
    crops = torch.stack([view for _, view in good]) if good else torch.empty(0, 3, 0, 0, dtype=torch.uint8)
    return [index for index, _ in good], crops, bad


