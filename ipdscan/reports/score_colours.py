"""The one colour scale for scores, shared by the ``explain`` heatmap and the HTML report's tile overlay.

A diverging blue-orange map (ColorBrewer's PuOr ends), readable with red-green colour blindness: neutral grey at
the scan's threshold, deeper blue towards 0 (real), deeper orange towards 1 (AI-generated). Centring it on the
threshold rather than on 0.5 makes "orange" mean "above the line the labels use".
"""
from __future__ import annotations

import numpy as np

BLUE, NEUTRAL, ORANGE = np.array((33, 102, 172)), np.array((235, 235, 235)), np.array((230, 97, 1))


def score_colours(scores: np.ndarray, threshold: float) -> np.ndarray:
    """(...) scores in 0..1 -> (..., 3) uint8 RGB colours."""
    scores = np.clip(np.asarray(scores, dtype=np.float64), 0, 1)[..., None]
    below = scores / max(threshold, 1e-9)  # 0 at score 0, 1 at the threshold
    above = (scores - threshold) / max(1 - threshold, 1e-9)  # 0 at the threshold, 1 at score 1
    colours = np.where(scores < threshold, BLUE + (NEUTRAL - BLUE) * below, NEUTRAL + (ORANGE - NEUTRAL) * above)
    return np.clip(np.rint(colours), 0, 255).astype(np.uint8)


def score_colour_hex(score: float, threshold: float) -> str:
    """One score's colour as "#rrggbb", for the HTML report."""
    return "#{:02x}{:02x}{:02x}".format(*score_colours(np.array(score), threshold))
