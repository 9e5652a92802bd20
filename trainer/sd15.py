"""Stable Diffusion 1.5 outputs as a corpus family: 512 px tiles of lossy-WebP 2x2 preview grids.

The fakes are real SD 1.5 generations, not content-matched to any photo, and they come only as lossy
WebP. So that the codec is no label signal, the reals paired with them get a WebP pass at a quality
drawn from what the previews themselves were saved at (``estimate_webp_qualities``), and both members
then share every later step (camera JPEG pass, that WebP pass, the pair's storage). Windows are cut at
offsets on WebP's 16 px macroblock grid, so the previews' block grid stays aligned; no resizing.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

TILE = 512
GRID = 16  # WebP (VP8) macroblock
QUALITY_STEPS = (40, 50, 60, 70, 75, 80, 85, 90, 95)


@dataclass(frozen=True)
class Tile:
    grid: str  # preview file name: the unit of the train/val split
    index: int  # 0..3 in a 2x2 grid (row-major), 0 for a single image
    box: tuple[int, int, int, int]  # left, top, right, bottom in the preview


def list_tiles(folder: Path) -> list[Tile]:
    """Every 512x512 tile of every preview (1024x1024 grids give four; other sizes >= 256 give one)."""
    tiles = []
    for path in sorted(Path(folder).glob("*.webp")):
        with Image.open(path) as opened:
            width, height = opened.size
        if (width, height) == (2 * TILE, 2 * TILE):
            tiles += [Tile(path.name, 2 * row + col, (col * TILE, row * TILE, (col + 1) * TILE, (row + 1) * TILE))
                      for row in range(2) for col in range(2)]
        elif min(width, height) >= 256:
            tiles.append(Tile(path.name, 0, (0, 0, width, height)))
    return tiles


def window(folder: Path, tile: Tile, side: int, seed: int) -> tuple[np.ndarray, int, int]:
    """A seeded, macroblock-aligned ``side`` x ``side`` window of the tile, and its offset in the tile."""
    left, top, right, bottom = tile.box
    digest = hashlib.sha256(f"{seed}:sd15-window:{tile.grid}:{tile.index}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    dy = GRID * int(rng.integers(0, (bottom - top - side) // GRID + 1))
    dx = GRID * int(rng.integers(0, (right - left - side) // GRID + 1))
    with Image.open(Path(folder) / tile.grid) as opened:
        pixels = np.asarray(opened.convert("RGB").crop((left + dx, top + dy, left + dx + side, top + dy + side)))
    return pixels, dy, dx


def webp_roundtrip(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "WEBP", quality=quality, method=4)
    return np.asarray(Image.open(buffer).convert("RGB"))


def estimate_webp_quality(path: Path) -> int:
    """The libwebp quality whose re-encoding of the decoded preview comes closest to its file size."""
    size = Path(path).stat().st_size
    with Image.open(path) as opened:
        pixels = opened.convert("RGB")
    best, best_gap = QUALITY_STEPS[0], float("inf")
    for quality in QUALITY_STEPS:
        buffer = io.BytesIO()
        pixels.save(buffer, "WEBP", quality=quality, method=4)
        gap = abs(buffer.tell() - size)
        if gap < best_gap:
            best, best_gap = quality, gap
    return best


def estimate_webp_qualities(folder: Path, sample: int, seed: int) -> list[int]:
    """Estimated qualities of a seeded sample of previews: the distribution the reals' WebP pass draws from."""
    paths = sorted(Path(folder).glob("*.webp"))
    chosen = np.random.default_rng([seed, 15]).permutation(len(paths))[:sample]
    return sorted(estimate_webp_quality(paths[i]) for i in chosen)
