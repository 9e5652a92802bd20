"""Where in an image the detector reacts: per-tile scores drawn as a heatmap over the image, with a legend.

The map is ``score_colours``' blue-orange scale centred on the threshold; pixels that no tile covers keep the
image's own colours (no tile scored them, so painting them would invent a score), and on a small image only tiles
at least half a window apart are scored (``tiles.distinct_count``), so neighbouring tiles show different pixels.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..model.detector import Detector
from ..reports.score_colours import score_colours
from ..scanning.decode import decode
from ..scanning.fetch import read_item
from ..scanning.item import Item
from ..scanning.tiles import crops_of
from ..text import threshold_text

MAX_SIDE = 1600  # heatmaps of huge images are drawn downscaled, same aspect ratio


@dataclass
class TileMap:
    pixels: np.ndarray  # (3, H, W) uint8, the decoded image
    centre_score: float  # the paper's single centre-crop score (what `scan` reports)
    offsets: list[tuple[int, int]]  # (top, left) of each tile in image pixels
    scores: list[float]  # one per tile
    window: int  # tile side in image pixels
    threshold: float  # the detector's: where the colour scale turns from blue to orange
    requested: int  # the tiles asked for; more than len(scores) when the image is too small for them


def read_image_file(path: str | os.PathLike) -> bytes:
    """The bytes of one local image, read as a scan reads files: a FIFO or device is refused (FetchError
    not_a_file), never opened and waited on, and a file over the scan's default size limit is refused too."""
    return read_item(Item(os.fspath(path), "file"))


def explain(detector: Detector, data: bytes, tiles: int = 16) -> TileMap:
    """Score the centre crop and about ``tiles`` distinct tiles of the image in ``data`` (raises DecodeError)."""
    pixels = decode(data).pixels
    crops, offsets = crops_of(pixels, detector.preprocessing, tiles, distinct=True)
    scores = detector.score(crops).tolist()
    return TileMap(pixels, scores[0], offsets, scores[1:], detector.preprocessing.crop, detector.threshold, tiles)


def coverage_mean(tile_map: TileMap) -> np.ndarray:
    """(H, W) float: each pixel's mean score over the tiles that cover it; NaN where no tile does."""
    _, h, w = tile_map.pixels.shape
    total, count = np.zeros((h, w)), np.zeros((h, w))
    for (top, left), score in zip(tile_map.offsets, tile_map.scores):
        y0, x0 = max(0, top), max(0, left)
        y1, x1 = min(h, top + tile_map.window), min(w, left + tile_map.window)
        total[y0:y1, x0:x1] += score
        count[y0:y1, x0:x1] += 1
    return np.divide(total, count, out=np.full_like(total, np.nan), where=count > 0)


def heatmap(tile_map: TileMap, opacity: float = 0.5) -> Image.Image:
    """The image with its per-pixel tile score blended in where tiles cover it, and a legend bar below."""
    image = tile_map.pixels.transpose(1, 2, 0).astype(np.float32)
    score = coverage_mean(tile_map)
    covered = ~np.isnan(score)[..., None]
    colour = score_colours(np.nan_to_num(score), tile_map.threshold).astype(np.float32)
    blended = Image.fromarray(np.rint(np.where(covered, (1 - opacity) * image + opacity * colour, image)).astype(np.uint8))
    scale = min(1.0, MAX_SIDE / max(blended.size))
    if scale < 1.0:
        blended = blended.resize((max(1, round(blended.width * scale)), max(1, round(blended.height * scale))),
                                 Image.Resampling.BILINEAR)
    return with_legend(blended, tile_map.threshold)


def with_legend(image: Image.Image, threshold: float) -> Image.Image:
    """``image`` above a legend band: the colour scale from 0 (real) to 1 (AI) with the threshold marked on it."""
    width = max(image.width, 240)  # room for the labels under a narrow image
    bar_h, text_h = 14, 16
    out = Image.new("RGB", (width, image.height + bar_h + text_h + 8), "white")
    out.paste(image, (0, 0))
    top = image.height + 4
    ramp = score_colours(np.linspace(0, 1, width), threshold)[None].repeat(bar_h, axis=0)
    out.paste(Image.fromarray(ramp), (0, top))
    draw, font = ImageDraw.Draw(out), ImageFont.load_default()
    tick = min(width - 1, round(threshold * (width - 1)))
    draw.line([(tick, top - 3), (tick, top + bar_h + 2)], fill="black", width=2)
    text_y = top + bar_h + 3
    label = f"threshold {threshold_text(threshold)}"
    label_w = draw.textlength(label, font=font)
    draw.text((min(max(0, tick - label_w / 2), width - label_w), text_y), label, fill="black", font=font)
    if tick - label_w / 2 > 50:
        draw.text((0, text_y), "0 real", fill="black", font=font)
    if tick + label_w / 2 < width - 40:
        draw.text((width - draw.textlength("1 AI", font=font), text_y), "1 AI", fill="black", font=font)
    return out
