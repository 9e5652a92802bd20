"""Where in an image the detector reacts: per-tile scores drawn as a heatmap over the image."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .decode import decode
from .fetch import read_item
from .preprocess import crop
from .score import Detector
from .sources import Item
from .tiles import crop_tiles

MAX_SIDE = 1600  # heatmaps of huge images are drawn downscaled, same aspect ratio


@dataclass
class TileMap:
    pixels: torch.Tensor  # (3, H, W) uint8, the decoded image
    centre_score: float  # the paper's single centre-crop score (what `scan` reports)
    offsets: list[tuple[int, int]]  # (top, left) of each tile in image pixels
    scores: list[float]  # one per tile
    window: int  # tile side in image pixels


def read_image_file(path: str | os.PathLike) -> bytes:
    """The bytes of one local image, read as a scan reads files: a FIFO or device is refused (FetchError
    not_a_file), never opened and waited on, and a file over the scan's default size limit is refused too."""
    return read_item(Item(os.fspath(path), "file"))


def explain(detector: Detector, data: bytes, tiles: int = 16) -> TileMap:
    """Score the centre crop and about ``tiles`` tiles of the image in ``data`` (raises DecodeError)."""
    pixels = decode(data).pixels
    windows, offsets = crop_tiles(pixels, tiles, detector.preprocessing)
    centre = crop(pixels, detector.preprocessing)[None]
    scores = detector.score(torch.cat([centre, windows])).tolist()
    return TileMap(pixels, scores[0], offsets, scores[1:], detector.preprocessing.crop)


def coverage_mean(tile_map: TileMap) -> np.ndarray:
    """(H, W) float: each pixel's mean score over the tiles that cover it."""
    _, h, w = tile_map.pixels.shape
    total, count = np.zeros((h, w)), np.zeros((h, w))
    for (top, left), score in zip(tile_map.offsets, tile_map.scores):
        y0, x0 = max(0, top), max(0, left)
        y1, x1 = min(h, top + tile_map.window), min(w, left + tile_map.window)
        total[y0:y1, x0:x1] += score
        count[y0:y1, x0:x1] += 1
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def heatmap(tile_map: TileMap, opacity: float = 0.5) -> Image.Image:
    """The image with its per-pixel tile score blended in: green (0, real) through yellow to red (1, AI)."""
    image = Image.fromarray(tile_map.pixels.permute(1, 2, 0).numpy())
    score = coverage_mean(tile_map)
    colour = np.stack([np.clip(2 * score, 0, 1), np.clip(2 * (1 - score), 0, 1), np.zeros_like(score)], axis=-1)
    overlay = Image.fromarray((colour * 255).astype(np.uint8))
    blended = Image.blend(image, overlay, opacity)
    scale = min(1.0, MAX_SIDE / max(blended.size))
    if scale < 1.0:
        blended = blended.resize((max(1, round(blended.width * scale)), max(1, round(blended.height * scale))),
                                 Image.Resampling.BILINEAR)
    return blended
