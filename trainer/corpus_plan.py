"""Every choice the corpus builder makes for a source photo, drawn from ``sha256(seed, purpose, source)`` so it
depends neither on ``--limit`` nor on file order: its split, its framing (down-scaled first or not, a square or
a portrait window, a whole or a local fake), its window on the JPEG grid, its qualities and storage, and which
generator makes its fake."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ipdscan.eval.labelled import image_files

WINDOW = 256
GRID = 16  # JPEG MCU with 4:2:0 chroma: keeps both luma (8) and chroma (16) block grids aligned
CAMERA_QUALITY = (75, 95)
STORAGE_QUALITY = (70, 100)
PNG_PROBABILITY = 0.5
EXTENSIONS = {".jpg", ".jpeg", ".png"}
JPEG_EXTENSIONS = {".jpg", ".jpeg"}
PORTRAIT_HEIGHT = 320  # a portrait window: 256 x 320 (multiples of 16, and of every generator's scale)
RESAMPLERS = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS)


@dataclass(frozen=True)
class Framing:
    """How often a source is framed unlike v2's square, unresized window (all 0: corpus v2's framing).

    Photos on the web are down-scaled, so a share of sources is resized before its window is cut (and both
    members then get the camera JPEG pass, as a re-saved web photo has); portrait photos get a portrait window;
    a share of fakes is local: only a masked region of the window comes from the generator (``local_fakes``)."""

    downscale_fraction: float = 0.0
    downscale_range: tuple[float, float] = (0.5, 0.9)
    portrait_fraction: float = 0.0
    local_fraction: float = 0.0

    def draw(self, rng: np.random.Generator, size: tuple[int, int]) -> tuple[float, int, int, bool]:
        """(scale, resampler index, window height, local) for a photo of ``size``; a fixed number of draws."""
        width, height = size
        downscale, factor = rng.random() < self.downscale_fraction, float(rng.uniform(*self.downscale_range))
        resampler = int(rng.integers(len(RESAMPLERS)))
        portrait = rng.random() < self.portrait_fraction and height > width
        local = bool(rng.random() < self.local_fraction)
        window_height = PORTRAIT_HEIGHT if portrait else WINDOW
        # never below the window: a photo too small for the drawn factor is scaled only as far as it can be
        scale = max(factor, WINDOW / width, window_height / height) if downscale else 1.0
        if scale >= 1.0 or min(width, height) * scale < WINDOW:
            scale = 1.0
        if height * scale < window_height:
            window_height = WINDOW
        return round(scale, 4), resampler, window_height, local


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
    scale: float = 1.0  # the photo is resized by this before the window is cut
    resampler: int = 0  # index into RESAMPLERS, when scaled
    height: int = WINDOW  # window height (its width is always WINDOW)
    local: bool = False  # the fake is a local one: a masked region of the generator's output in the real
    real_camera_pass: bool = False  # the real also gets the camera JPEG pass (a resized or non-JPEG source)


def source_rng(seed: int, source: str, purpose: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{purpose}:{source}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def split_of(seed: int, source: str, val_fraction: float, calibration_fraction: float = 0.0) -> str:
    draw = source_rng(seed, source, "split").random()
    if draw < calibration_fraction:
        return "calibration"
    return "val" if draw < calibration_fraction + val_fraction else "train"


def plan_for(seed: int, source: str, size: tuple[int, int], val_fraction: float, purpose: str = "pair",
             split: str | None = None, framing: Framing = Framing(), jpeg_source: bool = True) -> Plan:
    """``size``: the decoded photo's. The framing has its own stream, so with ``Framing()`` every other draw
    is what corpus v2 drew."""
    scale, resampler, window_height, local = framing.draw(source_rng(seed, source, purpose + ":framing"), size)
    width, height = scaled_size(size, scale)
    rng = source_rng(seed, source, purpose)
    top = GRID * int(rng.integers(0, (height - window_height) // GRID + 1))
    left = GRID * int(rng.integers(0, (width - WINDOW) // GRID + 1))
    camera_quality = int(rng.integers(CAMERA_QUALITY[0], CAMERA_QUALITY[1] + 1))
    png = rng.random() < PNG_PROBABILITY
    quality = None if png else int(rng.integers(STORAGE_QUALITY[0], STORAGE_QUALITY[1] + 1))
    return Plan(source, split or split_of(seed, source, val_fraction), top, left, camera_quality,
                "png" if png else "jpg", quality, scale, resampler, window_height, local,
                real_camera_pass=scale != 1.0 or not jpeg_source)


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return size if scale == 1.0 else (round(size[0] * scale), round(size[1] * scale))


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
    return [source for i, source in enumerate(sources) if i in keep]


def file_sha256(path: str | Path) -> str:
    """A file's identity for holding photos out: the same bytes under any name or folder are the same photo."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def held_out_hashes(folders: list[Path]) -> set[str]:
    """sha256 of every image below ``folders``: sources with these bytes never enter the corpus."""
    return {file_sha256(path) for folder in folders for path in image_files(folder)}


def decoded_rgb(path: Path) -> Image.Image:
    """The source's pixels as a scan sees them (EXIF orientation applied), in RGB."""
    with Image.open(path) as opened:
        return ImageOps.exif_transpose(opened).convert("RGB")


def cut(image: Image.Image, plan: Plan) -> np.ndarray:
    if plan.scale != 1.0:
        image = image.resize(scaled_size(image.size, plan.scale), RESAMPLERS[plan.resampler])
    return np.asarray(image.crop((plan.left, plan.top, plan.left + WINDOW, plan.top + plan.height)))


def load_window(path: Path, seed: int, source: str, split: str, framing: Framing = Framing()) -> tuple[np.ndarray, Plan]:
    """Decode the source, draw its plan, cut the window. Raises ValueError for unusable sources."""
    image = decoded_rgb(path)
    if min(image.size) < WINDOW:
        raise ValueError(f"smaller than {WINDOW}px: {image.size[0]}x{image.size[1]}")
    plan = plan_for(seed, source, image.size, 0.0, split=split, framing=framing,
                    jpeg_source=Path(path).suffix.lower() in JPEG_EXTENSIONS)
    return cut(image, plan), plan


def assign_generators(plans: list[Plan], families: dict[str, list[str]], seed: int,
                      shares: dict[str, int] | None = None) -> dict[str, str]:
    """Seeded shuffle, then one round-robin of families through train then val, each family ``shares[family]``
    times a turn (default 1): shares within one pair of their target overall and per split. Within a family
    each source draws its member generator from its own seed."""
    turns = [family for family in families for _ in range((shares or {}).get(family, 1))]
    out, turn = {}, 0
    for split in ("train", "val"):
        sources = sorted(plan.source for plan in plans if plan.split == split)
        for j in np.random.default_rng([seed, split == "val"]).permutation(len(sources)):
            members = families[turns[turn % len(turns)]]
            pick = int(source_rng(seed, sources[j], "member").integers(len(members))) if len(members) > 1 else 0
            out[sources[j]] = members[pick]
            turn += 1
    return out
