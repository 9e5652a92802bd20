"""Every choice the corpus builder makes for a source photo, drawn from ``sha256(seed, purpose, source)`` so it
depends neither on ``--limit`` nor on file order: its split, its 256x256 window on the JPEG grid, its qualities
and storage, and which generator makes its fake."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ipdscan.datasets import image_files

WINDOW = 256
GRID = 16  # JPEG MCU with 4:2:0 chroma: keeps both luma (8) and chroma (16) block grids aligned
CAMERA_QUALITY = (75, 95)
STORAGE_QUALITY = (70, 100)
PNG_PROBABILITY = 0.5
EXTENSIONS = {".jpg", ".jpeg", ".png"}


@dataclass(frozen=True)
class Plan:
    """Every random choice for one source, drawn from a per-source seed (independent of --limit and order)."""

    source: str  # path relative to --reals, "/"-separated
    split: str
    top: int
    left: int
    camera_quality: int
    format: str  # "png" or "jpg"
    quality: int | None  # storage JPEG quality, shared by real and fake


def source_rng(seed: int, source: str, purpose: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{purpose}:{source}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def split_of(seed: int, source: str, val_fraction: float, calibration_fraction: float = 0.0) -> str:
    draw = source_rng(seed, source, "split").random()
    if draw < calibration_fraction:
        return "calibration"
    return "val" if draw < calibration_fraction + val_fraction else "train"


def plan_for(seed: int, source: str, size: tuple[int, int], val_fraction: float, purpose: str = "pair",
             split: str | None = None) -> Plan:
    width, height = size
    rng = source_rng(seed, source, purpose)
    top = GRID * int(rng.integers(0, (height - WINDOW) // GRID + 1))
    left = GRID * int(rng.integers(0, (width - WINDOW) // GRID + 1))
    camera_quality = int(rng.integers(CAMERA_QUALITY[0], CAMERA_QUALITY[1] + 1))
    png = rng.random() < PNG_PROBABILITY
    quality = None if png else int(rng.integers(STORAGE_QUALITY[0], STORAGE_QUALITY[1] + 1))
    return Plan(source, split or split_of(seed, source, val_fraction), top, left, camera_quality,
                "png" if png else "jpg", quality)


def list_sources(roots: list[Path]) -> dict[str, Path]:
    """Source name -> file. One root: names relative to it; several: prefixed by the root's position."""
    sources = {}
    for i, root in enumerate(roots):
        prefix = f"{i}-{root.name}/" if len(roots) > 1 else ""
        for path in image_files(root):
            path = Path(path)
            if path.suffix.lower() in EXTENSIONS:
                sources[prefix + path.relative_to(root).as_posix()] = path
    return dict(sorted(sources.items()))


def choose_sources(paths: dict[str, Path], seed: int, limit: int | None) -> list[str]:
    """The sources a build takes: all of them, or a seeded random ``limit`` of them (in name order)."""
    sources = list(paths)
    if limit is None:
        return sources
    keep = set(np.random.default_rng(seed).permutation(len(sources))[:limit].tolist())
    return [s for i, s in enumerate(sources) if i in keep]


def file_sha256(path: str | Path) -> str:
    """A file's identity for holding photos out: the same bytes under any name or folder are the same photo."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def held_out_hashes(folders: list[Path]) -> set[str]:
    """sha256 of every image below ``folders``: sources with these bytes never enter the corpus."""
    return {file_sha256(p) for folder in folders for p in image_files(folder)}


def decoded_rgb(path: Path) -> Image.Image:
    """The source's pixels as a scan sees them (EXIF orientation applied), in RGB."""
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def cut(image: Image.Image, plan: Plan) -> np.ndarray:
    return np.asarray(image.crop((plan.left, plan.top, plan.left + WINDOW, plan.top + WINDOW)))


def load_window(path: Path, seed: int, source: str, split: str) -> tuple[np.ndarray, Plan]:
    """Decode the source, draw its plan, cut the window. Raises ValueError for unusable sources."""
    image = decoded_rgb(path)
    if min(image.size) < WINDOW:
        raise ValueError(f"smaller than {WINDOW}px: {image.size[0]}x{image.size[1]}")
    plan = plan_for(seed, source, image.size, 0.0, split=split)
    return cut(image, plan), plan


def assign_generators(plans: list[Plan], names: list[str], seed: int, shares: dict[str, int] | None = None) -> dict[str, str]:
    """Seeded shuffle, then one round-robin through train then val, each name ``shares[name]`` times a turn
    (default 1): shares within one pair of their target overall and per split."""
    turns = [n for n in names for _ in range((shares or {}).get(n, 1))]
    out, turn = {}, 0
    for split in ("train", "val"):
        sources = sorted(p.source for p in plans if p.split == split)
        for j in np.random.default_rng([seed, split == "val"]).permutation(len(sources)):
            out[sources[j]] = turns[turn % len(turns)]
            turn += 1
    return out
