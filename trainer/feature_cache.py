"""Frozen-trunk features of many augmented views per image, cached on disk by content (issue 31).

With the trunk frozen, its output for a view never changes: computing it once and keeping it lets an hour of CPU
fit heads on tens of thousands of views instead of re-running the trunk every epoch.

    python -m trainer.feature_cache ../data/corpus-v4 --cache ../data/features --views 6
    python -m trainer.feature_cache ../data/dev-eval2 --cache ../data/features --views 1 --recipe centre

A **view** is a 224 px window at the image's own resolution (reflect-padded where the image is smaller), a flip,
and a processing draw: a down-and-up resize, a slight blur and a JPEG pass, each with its own probability, in the
order a photo meets them. For an aligned pair (a real and its fake under one name in one generator folder) the
first half of the views draw window and processing from the pair's seed, so both members get the same and only
the generator differs; the second half draw from each file's own seed, so processing that differs between the
classes cannot tell them apart. Recipe ``centre`` is the test-time view: the centre window, nothing else.

A view's **features** are the mean and standard deviation over space of every trunk stage's output channels
(UnivFD-style pooled statistics, low and high stages together): 1,568 numbers for EfficientNet-Lite0.

**Store**: ``<cache>/<extractor>/<recipe>/<key[:2]>/<key>.npy``, float16 (views, features), ``key`` the sha256 of
the file's bytes, its pair name and the view count, and ``<recipe>`` ``centre`` or ``train-`` and the first 12 hex
digits of the processing's sha256 (``recipe_folder``): views drawn with other probabilities are other features. Written under a temporary name and renamed when whole, so an
interrupted run loses at most a batch, and a rerun computes only what is missing. ``<extractor>`` names the trunk
and its weights' sha256 (or the seed of a random initialisation: the content-only control).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from ipdscan.eval.labelled import labelled_images, read_pixels
from ipdscan.model.efficientnet_lite import PRETRAINED, EfficientNetLite, load_lite

WINDOW = 224
RECIPES = ("train", "centre")


@dataclass(frozen=True)
class Processing:
    """What a training view may go through, each step with its own probability."""
    resize_p: float = 0.2
    resize_range: tuple[float, float] = (0.5, 0.9)  # down by this factor, then back up
    blur_p: float = 0.2
    blur_sigma: tuple[float, float] = (0.3, 1.2)
    jpeg_p: float = 0.3
    jpeg_quality: tuple[int, int] = (65, 98)


@dataclass(frozen=True)
class Entry:
    path: str
    label: int  # 1 = fake
    split: str  # train, val, test or "" (an unsplit evaluation root)
    generator: str
    pair: str  # the name a real and its aligned fake share within their generator folder


def seeded(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256("\0".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def window(pixels: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """(H, W, 3) -> a (224, 224, 3) window: at a random place (``rng``) or the centre; reflect-padded if small."""
    h, w = pixels.shape[:2]
    pad_h, pad_w = max(0, WINDOW - h), max(0, WINDOW - w)
    if pad_h or pad_w:
        pixels = np.pad(pixels, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)),
                        mode="reflect" if min(h, w) > 1 else "edge")
        h, w = pixels.shape[:2]
    if rng is None:
        top, left = (h - WINDOW) // 2, (w - WINDOW) // 2
    else:
        top, left = int(rng.integers(0, h - WINDOW + 1)), int(rng.integers(0, w - WINDOW + 1))
    return pixels[top:top + WINDOW, left:left + WINDOW]


def processed(view: np.ndarray, rng: np.random.Generator, p: Processing) -> np.ndarray:
    """A flip, then resize, blur and JPEG each drawn on its own: the draws happen whether or not a step applies, so
    one image's later steps do not depend on its earlier coin flips."""
    flip, do_resize, do_blur, do_jpeg = rng.random(4)
    factor, sigma = rng.uniform(*p.resize_range), rng.uniform(*p.blur_sigma)
    quality = int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1))
    image = Image.fromarray(np.ascontiguousarray(view[:, ::-1] if flip < 0.5 else view))
    if do_resize < p.resize_p:
        small = max(8, round(WINDOW * factor))
        image = image.resize((small, small), Image.BILINEAR).resize((WINDOW, WINDOW), Image.BILINEAR)
    if do_blur < p.blur_p:
        image = image.filter(ImageFilter.GaussianBlur(sigma))
    if do_jpeg < p.jpeg_p:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        image = Image.open(buffer).convert("RGB")
    return np.asarray(image)


def hwc_pixels(path: str) -> np.ndarray:
    """(H, W, 3) uint8, read and decoded exactly as a scan reads and decodes the file."""
    return np.asarray(read_pixels(path)).transpose(1, 2, 0)


def views_of(entry: Entry, content_sha: str, recipe: str, count: int, p: Processing = Processing()) -> np.ndarray:
    """The entry's views, (count, 224, 224, 3) uint8."""
    pixels = hwc_pixels(entry.path)
    if recipe == "centre":
        return window(pixels, None)[None]
    out = []
    for index in range(count):
        # Pair-synced views share the pair's seed; the others are the file's own.
        rng = seeded("view", entry.generator, entry.pair, index) if index < (count + 1) // 2 else \
            seeded("view", content_sha, index)
        out.append(processed(window(pixels, rng), rng, p))
    return np.stack(out)


def pooled_statistics(stages: list[torch.Tensor]) -> torch.Tensor:
    """Each stage's (B, C, h, w) -> its channels' mean and std over space, concatenated: (B, 2 * sum(C))."""
    return torch.cat([torch.cat([s.mean(dim=(2, 3)), s.std(dim=(2, 3))], 1) for s in stages], 1)


@dataclass
class Extractor:
    model: EfficientNetLite
    id: str  # names the trunk and its weights in the cache's folder names

    @classmethod
    def build(cls, trunk: str, random_init: bool = False, seed: int = 0) -> Extractor:
        model = load_lite(trunk, pretrained=not random_init, seed=seed)
        weights = f"random{seed}" if random_init else PRETRAINED[trunk].sha256[:12]
        return cls(model, f"{trunk}-{weights}-stagestats")

    @torch.inference_mode()
    def features(self, views: np.ndarray) -> np.ndarray:
        """(N, 224, 224, 3) uint8 -> (N, D) float16."""
        x = torch.from_numpy(views).permute(0, 3, 1, 2).float().div_(255)
        return pooled_statistics(self.model.forward_features(x)).numpy().astype(np.float16)


def corpus_entries(root: Path, splits: tuple[str, ...] = ("train", "val", "test", "")) -> list[Entry]:
    """Every labelled image below a CNNSpot-style root, with its split and pair name."""
    entries = []
    for folder, paths in labelled_images(root):
        if folder.split not in splits:
            continue
        for path in paths:
            entries.append(Entry(path, folder.label, folder.split, folder.generator, Path(path).stem))
    return entries


def recipe_folder(recipe: str, p: Processing) -> str:
    """The cache folder of a recipe's views: the training recipe's names its processing by content."""
    if recipe == "centre":
        return recipe
    return f"{recipe}-{hashlib.sha256(json.dumps(asdict(p), sort_keys=True).encode()).hexdigest()[:12]}"


def cache_path(cache: Path, extractor_id: str, folder: str, key: str) -> Path:
    return cache / extractor_id / folder / key[:2] / f"{key}.npy"


def entry_key(entry: Entry, content_sha: str, views: int) -> str:
    return hashlib.sha256(f"{content_sha}\0{entry.generator}\0{entry.pair}\0{views}".encode()).hexdigest()


def file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cache_features(entries: list[Entry], extractor: Extractor, cache: Path, recipe: str, views: int,
                   batch: int = 48, log=print, processing: Processing = Processing()) -> dict[str, Path]:
    """Compute and store what is missing; return each entry's cache file (entries that fail to decode are
    reported and left out)."""
    located, pending, failures, started = {}, [], 0, time.monotonic()
    folder = recipe_folder(recipe, processing)
    for entry in entries:
        sha = file_sha256(entry.path)
        target = cache_path(cache, extractor.id, folder, entry_key(entry, sha, views))
        located[entry.path] = target
        if not target.exists():
            pending.append((entry, sha, target))
    log(f"{extractor.id}/{folder}: {len(entries) - len(pending)} of {len(entries)} cached, {len(pending)} to do")
    buffered: list[tuple[Path, np.ndarray]] = []

    def flush():
        stacked = np.concatenate([v for _, v in buffered])
        features = extractor.features(stacked)
        start = 0
        for target, v in buffered:
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_suffix(f".tmp{os.getpid()}.npy")
            np.save(temporary, features[start:start + len(v)])
            temporary.replace(target)
            start += len(v)
        buffered.clear()

    done = 0
    for entry, sha, target in pending:
        try:
            buffered.append((target, views_of(entry, sha, recipe, views, processing)))
        except Exception as exc:  # one unreadable file costs that file, never the run
            failures += 1
            located.pop(entry.path)
            log(f"skipped {entry.path}: {type(exc).__name__}: {exc}")
        if sum(len(v) for _, v in buffered) >= batch:
            flush()
        done += 1
        if done % 500 == 0:
            rate = done / (time.monotonic() - started)
            log(f"  {done}/{len(pending)} images, {rate:.1f} img/s ({rate * views:.0f} views/s)")
    if buffered:
        flush()
    log(f"{extractor.id}/{folder}: done in {time.monotonic() - started:.0f} s, {failures} unreadable")
    return located


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", type=Path, nargs="+", help="CNNSpot-style roots (a corpus, an evaluation set)")
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--trunk", choices=sorted(PRETRAINED), default="lite0")
    parser.add_argument("--random-init", action="store_true", help="a randomly initialised trunk: the control")
    parser.add_argument("--seed", type=int, default=0, help="the random initialisation's seed")
    parser.add_argument("--recipe", choices=RECIPES, default="train")
    parser.add_argument("--views", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.views < 1:
        parser.error("--views must be at least 1")
    views = 1 if args.recipe == "centre" else args.views  # the centre window is one view
    torch.set_num_threads(args.threads)
    extractor = Extractor.build(args.trunk, args.random_init, args.seed)
    for root in args.roots:
        cache_features(corpus_entries(root), extractor, args.cache, args.recipe, views)
    return 0


if __name__ == "__main__":
    sys.exit(main())
