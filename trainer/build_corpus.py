"""Build the real-vs-fake training corpus from real photographs: content-matched pairs, same compression history.

    python -m trainer.build_corpus --reals /work/shared/data/train-real --out data/corpus --seed 0

Each source photo gives one 256x256 window of its decoded pixels (no resizing, offsets on the 16 px
JPEG MCU grid so the camera's block grid stays aligned): that window is the real. One generator turns
the window into its fake. The fake then gets one JPEG pass at a camera-like quality, U{75..95}, because
every real already carries a camera JPEG history; finally both members of the pair get the same storage:
PNG with p=0.5, else JPEG at one quality U{70..100}. So neither class can be told apart by codec.
Train/val split by source file (seeded hash), never by crop. Layout (CNNSpot):

    <out>/{train,val}/<generator>/{0_real,1_fake}/<source>.{png,jpg}
    <out>/manifest.csv  <out>/stats.json  <out>/generators/ (trained simulator weights)
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import platform
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from trainer import generators

WINDOW = 256
GRID = 16  # JPEG MCU with 4:2:0 chroma: keeps both luma (8) and chroma (16) block grids aligned
CAMERA_QUALITY = (75, 95)
STORAGE_QUALITY = (70, 100)
PNG_PROBABILITY = 0.5
EXTENSIONS = {".jpg", ".jpeg", ".png"}
MANIFEST_FIELDS = ["source", "split", "generator", "real_path", "fake_path", "format", "quality",
                   "camera_quality", "window_top", "window_left", "generate_s"]


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


def split_of(seed: int, source: str, val_fraction: float) -> str:
    return "val" if source_rng(seed, source, "split").random() < val_fraction else "train"


def plan_for(seed: int, source: str, size: tuple[int, int], val_fraction: float) -> Plan:
    width, height = size
    rng = source_rng(seed, source, "pair")
    top = GRID * int(rng.integers(0, (height - WINDOW) // GRID + 1))
    left = GRID * int(rng.integers(0, (width - WINDOW) // GRID + 1))
    camera_quality = int(rng.integers(CAMERA_QUALITY[0], CAMERA_QUALITY[1] + 1))
    png = rng.random() < PNG_PROBABILITY
    quality = None if png else int(rng.integers(STORAGE_QUALITY[0], STORAGE_QUALITY[1] + 1))
    return Plan(source, split_of(seed, source, val_fraction), top, left, camera_quality,
                "png" if png else "jpg", quality)


def list_sources(reals: Path) -> list[str]:
    return sorted(p.relative_to(reals).as_posix() for p in reals.rglob("*")
                  if p.is_file() and p.suffix.lower() in EXTENSIONS)


def jpeg_roundtrip(pixels: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def store(pixels: np.ndarray, path: Path, plan: Plan) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if plan.format == "png":
        Image.fromarray(pixels).save(path, "PNG")
    else:
        Image.fromarray(pixels).save(path, "JPEG", quality=plan.quality)


def load_window(path: Path, seed: int, source: str, val_fraction: float) -> tuple[np.ndarray, Plan]:
    """Decode the source, draw its plan, cut the window. Raises ValueError for unusable sources."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if min(im.size) < WINDOW:
            raise ValueError(f"smaller than {WINDOW}px: {im.size[0]}x{im.size[1]}")
        plan = plan_for(seed, source, im.size, val_fraction)
        window = np.asarray(im.crop((plan.left, plan.top, plan.left + WINDOW, plan.top + WINDOW)))
    return window, plan


def assign_generators(plans: list[Plan], names: list[str], seed: int) -> dict[str, str]:
    """Seeded shuffle, then one round-robin through train then val: equal shares (+-1) overall and per split."""
    out, turn = {}, 0
    for split in ("train", "val"):
        sources = sorted(p.source for p in plans if p.split == split)
        for j in np.random.default_rng([seed, split == "val"]).permutation(len(sources)):
            out[sources[j]] = names[turn % len(names)]
            turn += 1
    return out


def write_pair(out: Path, plan: Plan, generator: str, real: np.ndarray, fake: np.ndarray) -> dict:
    """Give the fake its camera JPEG pass, store both members the same way; returns the manifest row."""
    fake = jpeg_roundtrip(fake, plan.camera_quality)
    stem = Path(plan.source).with_suffix("").as_posix().replace("/", "_")
    real_path = Path(plan.split) / generator / "0_real" / f"{stem}.{plan.format}"
    fake_path = Path(plan.split) / generator / "1_fake" / f"{stem}.{plan.format}"
    store(real, out / real_path, plan)
    store(fake, out / fake_path, plan)
    return {"source": plan.source, "split": plan.split, "generator": generator,
            "real_path": real_path.as_posix(), "fake_path": fake_path.as_posix(),
            "format": plan.format, "quality": plan.quality or "", "camera_quality": plan.camera_quality,
            "window_top": plan.top, "window_left": plan.left}


def build(reals: Path, out: Path, seed: int = 0, limit: int | None = None, names: list[str] | None = None,
          val_fraction: float = 0.1, autogan_steps: int = 300, autogan_width: int = 32, log=print) -> dict:
    start = time.perf_counter()
    names = list(names or generators.NAMES)
    gens = {n: generators.make(n, autogan_steps=autogan_steps, autogan_width=autogan_width) for n in names}
    sources = list_sources(reals)
    if limit is not None:
        keep = set(np.random.default_rng(seed).permutation(len(sources))[:limit].tolist())
        sources = [s for i, s in enumerate(sources) if i in keep]
    log(f"{len(sources)} sources, generators: {', '.join(names)}")

    windows, plans, skipped = {}, [], {}
    for s in sources:
        try:
            windows[s], plan = load_window(reals / s, seed, s, val_fraction)
            plans.append(plan)
        except (OSError, ValueError) as e:  # one bad photo never stops the build
            skipped[s] = f"{type(e).__name__}: {e}"
    log(f"decoded {len(plans)} windows, skipped {len(skipped)} ({time.perf_counter() - start:.0f}s)")

    train_windows = [windows[p.source] for p in plans if p.split == "train"]
    prepared = {}
    for n, g in gens.items():
        t = time.perf_counter()
        prepared[n] = g.prepare(train_windows, out / "generators", seed)
        prepared[n]["prepare_s"] = round(time.perf_counter() - t, 1)
        log(f"prepared {n}: {prepared[n]}")

    assignment = assign_generators(plans, names, seed)
    rows, gen_seconds = [], defaultdict(float)
    with open(out / "manifest.csv", "w", newline="") as manifest:  # rows land as pairs do: a cut-short build stays usable
        writer = csv.DictWriter(manifest, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        for i, plan in enumerate(plans):
            name = assignment[plan.source]
            t = time.perf_counter()
            try:
                fake = gens[name](windows[plan.source])
            except Exception as e:  # one failed generation never stops the build
                skipped[plan.source] = f"{name} failed: {type(e).__name__}: {e}"
                continue
            gen_seconds[name] += time.perf_counter() - t
            if fake.shape != windows[plan.source].shape:
                skipped[plan.source] = f"{name} returned {fake.shape}, expected {windows[plan.source].shape}"
                continue
            rows.append(write_pair(out, plan, name, windows[plan.source], fake))
            rows[-1]["generate_s"] = round(time.perf_counter() - t, 4)
            writer.writerow(rows[-1])
            manifest.flush()
            if (i + 1) % 200 == 0:
                log(f"{i + 1}/{len(plans)} pairs ({time.perf_counter() - start:.0f}s)")

    counts = Counter((r["split"], r["generator"]) for r in rows)
    stats = {
        "pairs": len(rows),
        "counts": {split: {n: counts[split, n] for n in names} for split in ("train", "val")},
        "formats": dict(Counter(r["format"] for r in rows)),
        "skipped": skipped,
        "generators": {n: {**prepared[n], "images": sum(counts[s, n] for s in ("train", "val")),
                           "generate_s": round(gen_seconds[n], 1)} for n in names},
        "wall_s": round(time.perf_counter() - start, 1),
        "args": {"reals": str(reals), "seed": seed, "limit": limit, "val_fraction": val_fraction,
                 "autogan_steps": autogan_steps, "autogan_width": autogan_width, "window": WINDOW, "grid": GRID,
                 "camera_quality": CAMERA_QUALITY, "storage_quality": STORAGE_QUALITY,
                 "png_probability": PNG_PROBABILITY},
        "python": platform.python_version(),
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    log(f"done: {len(rows)} pairs in {stats['wall_s']}s -> {out}")
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reals", type=Path, required=True, help="folder of real photos (searched recursively)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="use a seeded random subset of N sources")
    ap.add_argument("--generators", nargs="+", default=list(generators.NAMES), choices=generators.NAMES)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--autogan-steps", type=int, default=300, help="L1 training steps per AutoGAN simulator")
    ap.add_argument("--autogan-width", type=int, default=32)
    args = ap.parse_args(argv)
    if not args.reals.is_dir():
        ap.error(f"--reals {args.reals} is not a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        build(args.reals, args.out, args.seed, args.limit, args.generators, args.val_fraction,
              args.autogan_steps, args.autogan_width, log=lambda m: print(m, flush=True))
    except RuntimeError as e:  # a generator that cannot run here
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
