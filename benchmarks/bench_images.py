"""The benchmark's images: a seeded, photo-like corpus per size set, made once and reused, and hard-link farms
that give a scan many inputs without the disk (``bench_scan.py`` builds them; see benchmarks/README.md)."""
from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZES = ("640x480", "12mp", "png-mix")


PNG_SIZES = ((256, 256), (512, 384), (800, 600), (1024, 1024), (333, 517))


PNG_MODES = ("RGB", "RGB", "RGBA", "L")


def natural_image(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """A photo-like RGB image: a 1/f colour field with soft-edged shapes, drawn at most 1024 px wide and
    rescaled (as a camera's or a site's pipeline would), then fine texture and sensor noise at full size."""
    scale = min(1.0, 1024 / max(width, height))
    w, h = max(8, round(width * scale)), max(8, round(height * scale))
    field = np.zeros((h, w, 3), np.float32)
    for octave in range(7):  # amplitude falls with frequency, like natural images' spectra
        cells = 2 ** (octave + 1)
        coarse = rng.normal(0, 1, (max(2, cells * h // max(w, h)), max(2, cells * w // max(w, h)), 3)).astype(np.float32)
        up = [np.asarray(Image.fromarray(coarse[..., c]).resize((w, h), Image.BICUBIC)) for c in range(3)]
        field += np.stack(up, -1) * 0.55 ** octave
    mix = np.eye(3, dtype=np.float32) * 0.5 + 0.5 * rng.uniform(0.2, 1.0, (3, 3)).astype(np.float32)  # correlated colour
    field = field @ mix
    field = (field - field.mean()) / (field.std() + 1e-6) * rng.uniform(30, 55) + rng.uniform(90, 160)
    scene = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
    shapes = Image.new("RGBA", (w, h))
    draw = ImageDraw.Draw(shapes)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.2, 1.0) * h
        x1, y1 = x0 + rng.uniform(0.05, 0.5) * w, y0 + rng.uniform(0.05, 0.5) * h
        colour = tuple(int(v) for v in rng.integers(0, 256, 3)) + (int(rng.integers(120, 230)),)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    shapes = shapes.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.6, 3.0))))
    scene = Image.alpha_composite(scene.convert("RGBA"), shapes).convert("RGB")
    if (w, h) != (width, height):
        scene = scene.resize((width, height), Image.BICUBIC)
    pixels = np.asarray(scene, dtype=np.float32)
    grain = rng.normal(0, 1, ((height + 1) // 2, (width + 1) // 2)).astype(np.float32)
    texture = np.asarray(Image.fromarray(grain).resize((width, height), Image.BICUBIC))  # fine, spatially correlated
    pixels += texture[..., None] * rng.uniform(3, 8) + rng.normal(0, rng.uniform(1, 3), pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def corpus_spec(size: str, n: int) -> list[tuple[str, int, int, str]]:
    """(file name, width, height, PIL mode) for each image of a ``size`` set of ``n`` (the big sets are smaller)."""
    if size == "640x480":
        return [(f"{i:05d}.jpg", 640, 480, "RGB") for i in range(n)]
    if size == "12mp":
        return [(f"{i:05d}.jpg", 4000, 3000, "RGB") for i in range(max(2, n // 8))]
    if size == "png-mix":
        return [(f"{i:05d}.png", *PNG_SIZES[i % len(PNG_SIZES)], PNG_MODES[i % len(PNG_MODES)]) for i in range(max(4, n // 2))]
    raise ValueError(size)


def build_corpus(cache: Path, size: str, n: int, seed: int) -> Path:
    """The images of one size set, made once per (size, n, seed) and reused from ``cache`` after that."""
    folder = cache / f"{size}-n{n}-seed{seed}"
    if (folder / "COMPLETE").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder, seed, size, index, spec) for index, spec in enumerate(corpus_spec(size, n))]
    with multiprocessing.get_context("fork").Pool(os.cpu_count()) as pool:  # ~55 ms an image at 640x480
        for _ in pool.imap_unordered(write_image, jobs, chunksize=16):
            pass
    (folder / "COMPLETE").write_text("")
    return folder


def write_image(job) -> None:
    folder, seed, size, index, (name, width, height, mode) = job
    rng = np.random.default_rng([seed, SIZES.index(size), index])  # per image: the same set on any core count
    image = natural_image(width, height, rng)
    if name.endswith(".jpg"):
        image.save(folder / name, quality=int(rng.integers(80, 96)))
    else:
        if mode == "RGBA":
            image.putalpha(Image.fromarray(rng.integers(200, 256, (height, width), dtype=np.uint8)))
        image.convert(mode).save(folder / name)


def corpus_files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.iterdir() if p.suffix in (".jpg", ".png"))


def link_copies(folder: Path, copies: int) -> Path:
    """``copies`` hard links to every image of ``folder``: a long scan of many inputs from a corpus built once."""
    farm = folder.parent / f"{folder.name}-x{copies}"
    if (farm / "COMPLETE").exists():
        return farm
    farm.mkdir(exist_ok=True)
    for source in sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png")):
        for copy in range(copies):
            link = farm / f"{copy:03d}-{source.name}"
            if not link.exists():
                os.link(source, link)
    (farm / "COMPLETE").write_text("")
    return farm


def link_farm(base: Path, count: int, seed: int) -> Path:
    """A directory of ``count`` hard links to tiny JPEGs: many inputs, no disk. A file takes at most
    65,000 links on ext4, so every 10,000 links get their own (identical) source file."""
    folder = base / f"links-{count}"
    if (folder / "COMPLETE").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    tiny = natural_image(64, 64, np.random.default_rng(seed))
    for i in range(count):
        source = base / f"tiny-{i // 10_000}.jpg"
        if not source.exists():
            tiny.save(source, quality=90)
        link = folder / f"{i:06d}.jpg"
        if not link.exists():
            os.link(source, link)
    (folder / "COMPLETE").write_text("")
    return folder
