"""Multi-crop scoring: the paper scores one centre crop; a large image has room for many.

``tile_offsets`` lays a grid of crop windows over the image (matched to its aspect ratio), and
``crops_of`` cuts them with the same reflect-pad gather the centre crop uses (``preprocess.windows``), so a
tile over a small image is exactly the centre crop. Numpy arrays in the CPU stage, torch tensors in the GPU
decode path: the same code for both.
"""
from __future__ import annotations

import math

from ..model.preprocess import Preprocessing, centre_offset, windows


def grid_shape(height: int, width: int, tiles: int) -> tuple[int, int]:
    """A rows x cols grid of at least ``tiles`` cells whose shape follows the image's aspect ratio."""
    rows = min(tiles, max(1, round(math.sqrt(tiles * height / max(width, 1)))))
    return rows, math.ceil(tiles / rows)


def _starts(length: int, window: int, count: int) -> list[int]:
    if length <= window or count == 1:
        return [(length - window) // 2]  # one window, centred (reflect padding fills a short side)
    return sorted({round(i * (length - window) / (count - 1)) for i in range(count)})


def distinct_count(length: int, window: int) -> int:
    """How many windows fit along a side at least half a window apart: more would overlap almost entirely and
    show nearly the same pixels (a 256 px side has room for one 224 px window, not four)."""
    return 1 + max(0, length - window) // max(1, window // 2)


def tile_offsets(height: int, width: int, tiles: int, window: int, distinct: bool = False) -> list[tuple[int, int]]:
    """(top, left) of each window in image coordinates (negative: it reaches into the reflect padding).
    ``distinct``: at most ``distinct_count`` windows along each side (explain's map), so fewer on small images."""
    rows, cols = grid_shape(height, width, tiles)
    if distinct:
        rows, cols = min(rows, distinct_count(height, window)), min(cols, distinct_count(width, window))
    return [(top, left) for top in _starts(height, window, rows) for left in _starts(width, window, cols)]


def crops_of(pixels, p: Preprocessing, tiles: int = 0,
             distinct: bool = False) -> tuple[object, list[tuple[int, int]]]:
    """(3, H, W) -> ((K, 3, crop, crop): the centre crop, then about ``tiles`` tiles; the tiles' offsets), as
    ``pixels`` is: a numpy array or a torch tensor. What a scan and explain score; ``distinct`` as for
    tile_offsets."""
    _, h, w = pixels.shape
    offsets = tile_offsets(h, w, tiles, p.crop, distinct) if tiles else []
    padded = [centre_offset(h, w, p), *((top + p.pad, left + p.pad) for top, left in offsets)]
    return windows(pixels, p, padded), offsets
