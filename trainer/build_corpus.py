"""Build the real-vs-fake training corpus from real photographs: content-matched pairs, same compression history.

    python -m trainer.build_corpus --reals ../shared/data/train-real --out data/corpus --seed 0 \
        --taef2-weights ../shared/data/generators/taef2 --sd15 ../shared/data/train-gen/sd15-cheatsheet \
        --holdout ../shared/data/dev-eval

Each source photo gives one 256x256 window of its decoded pixels (no resizing, offsets on the 16 px
JPEG MCU grid so the camera's block grid stays aligned): that window is the real. One generator turns
the window into its fake. The fake then gets one JPEG pass at a camera-like quality, U{75..95}, because
every real already carries a camera JPEG history; finally both members of the pair get the same storage:
PNG with p=0.5, else JPEG at one quality U{70..100}. So neither class can be told apart by codec.
Train/val split by source file (seeded hash), never by crop. A further seeded share of the sources
(``--calibration-fraction``) is kept whole and untouched in ``calibration/``: real photos that no
training step sees, on which the shipped threshold is chosen (not a ``0_real`` folder, so that ``ipdscan
train`` on the corpus root cannot pick them up as unsplit training data). With ``--sd15`` a second family pairs real
Stable Diffusion 1.5 windows with second windows of the photos (``trainer/sd15.py``). Layout (CNNSpot):

    <out>/{train,val}/<generator>/{0_real,1_fake}/<source>.{png,jpg}
    <out>/calibration/<source file>     (byte-for-byte copies; no label folder, so training never sees them)
    <out>/manifest.csv  <out>/stats.json  <out>/generators/ (trained simulator weights)
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import platform
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ipdscan.datasets import image_files

from trainer import generators, sd15

WINDOW = 256
GRID = 16  # JPEG MCU with 4:2:0 chroma: keeps both luma (8) and chroma (16) block grids aligned
CAMERA_QUALITY = (75, 95)
STORAGE_QUALITY = (70, 100)
PNG_PROBABILITY = 0.5
EXTENSIONS = {".jpg", ".jpeg", ".png"}
MANIFEST_FIELDS = ["source", "split", "generator", "real_path", "fake_path", "format", "quality",
                   "camera_quality", "webp_quality", "window_top", "window_left", "fake_source",
                   "sharpness_real", "sharpness_fake", "generate_s"]
# Pairs per turn of the generator round-robin: TAEF2 stands for the latent-diffusion decoders, the
# family modern generators share, so it gets the share of a whole family of three.
DEFAULT_SHARES = {"taef2": 2}
SD15 = "sd15"


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


def held_out_hashes(folders: list[Path]) -> set[str]:
    """sha256 of every image below ``folders``: sources with these bytes never enter the corpus."""
    return {hashlib.sha256(Path(p).read_bytes()).hexdigest() for folder in folders for p in image_files(folder)}


def sharpness(pixels: np.ndarray) -> float:
    """Mean squared 4-neighbour Laplacian of the luma: high-frequency energy, to compare fakes with reals."""
    y = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    laplacian = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float(np.mean(laplacian ** 2))


def jpeg_roundtrip(pixels: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def store(pixels: np.ndarray, path: Path, plan: Plan) -> None:
    """Write through a temporary name, so a build killed mid-write leaves no truncated image a rerun would keep."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    if plan.format == "png":
        Image.fromarray(pixels).save(partial, "PNG")
    else:
        Image.fromarray(pixels).save(partial, "JPEG", quality=plan.quality)
    os.replace(partial, path)


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


def write_pair(out: Path, plan: Plan, generator: str, real: np.ndarray, fake: np.ndarray,
               webp_quality: int | None = None) -> dict:
    """Give the fake its camera JPEG pass (and both a WebP pass), store both the same way; returns the manifest row."""
    fake = jpeg_roundtrip(fake, plan.camera_quality)
    if webp_quality is not None:
        real, fake = sd15.webp_roundtrip(real, webp_quality), sd15.webp_roundtrip(fake, webp_quality)
    stem = Path(plan.source).with_suffix("").as_posix().replace("/", "_")
    real_path = Path(plan.split) / generator / "0_real" / f"{stem}.{plan.format}"
    fake_path = Path(plan.split) / generator / "1_fake" / f"{stem}.{plan.format}"
    store(real, out / real_path, plan)
    store(fake, out / fake_path, plan)
    return {"source": plan.source, "split": plan.split, "generator": generator,
            "real_path": real_path.as_posix(), "fake_path": fake_path.as_posix(),
            "format": plan.format, "quality": plan.quality or "", "camera_quality": plan.camera_quality,
            "webp_quality": webp_quality or "", "window_top": plan.top, "window_left": plan.left,
            "sharpness_real": round(sharpness(real), 2), "sharpness_fake": round(sharpness(fake), 2)}


def sd15_pairs(sd15_dir: Path, plans: list[Plan], paths: dict[str, Path], seed: int, val_fraction: float,
               qualities: list[int]):
    """(plan, real window, fake window, webp quality, tile name) for the SD 1.5 family.

    Each train/val photo gives a second window (its own seeded offset and storage draw) paired with one
    SD tile of the same split; tiles split by their preview grid, so no grid is in both splits."""
    tiles = sd15.list_tiles(sd15_dir)
    for split in ("train", "val"):
        pool = [t for t in tiles if split_of(seed, t.grid, val_fraction) == split]
        pool = [pool[i] for i in np.random.default_rng([seed, 1515, split == "val"]).permutation(len(pool))]
        sources = sorted(p.source for p in plans if p.split == split)
        for source, tile in zip(sources, pool):
            image = decoded_rgb(paths[source])
            plan = plan_for(seed, source, image.size, val_fraction, purpose=SD15, split=split)
            fake, dy, dx = sd15.window(sd15_dir, tile, WINDOW, seed)
            quality = qualities[int(source_rng(seed, source, "webp").integers(len(qualities)))]
            yield plan, cut(image, plan), fake, quality, f"{tile.grid}#{tile.index}@{dy},{dx}"


def build(reals: Path | list[Path], out: Path, seed: int = 0, limit: int | None = None, names: list[str] | None = None,
          val_fraction: float = 0.1, autogan_steps: int = 300, autogan_width: int = 32, log=print, *,
          calibration_fraction: float = 0.0, holdout: list[Path] = (), taef2_weights: Path | None = None,
          sd15_dir: Path | None = None, shares: dict[str, int] | None = None, webp_sample: int = 24) -> dict:
    start = time.perf_counter()
    roots = [Path(r) for r in (reals if isinstance(reals, (list, tuple)) else [reals])]
    names = list(names or generators.NAMES)
    shares = DEFAULT_SHARES if shares is None else shares
    args = {"reals": [str(r) for r in roots], "seed": seed, "limit": limit, "generators": names,
            "val_fraction": val_fraction, "calibration_fraction": calibration_fraction,
            "holdout": [str(h) for h in holdout], "taef2_weights": str(taef2_weights) if taef2_weights else None,
            "sd15": str(sd15_dir) if sd15_dir else None, "shares": shares, "autogan_steps": autogan_steps,
            "autogan_width": autogan_width, "window": WINDOW, "grid": GRID, "camera_quality": list(CAMERA_QUALITY),
            "storage_quality": list(STORAGE_QUALITY), "png_probability": PNG_PROBABILITY}
    claim_output(out, args)
    gens = {n: generators.make(n, autogan_steps=autogan_steps, autogan_width=autogan_width, taef2_weights=taef2_weights)
            for n in names}
    paths = list_sources(roots)
    sources = list(paths)
    if limit is not None:
        keep = set(np.random.default_rng(seed).permutation(len(sources))[:limit].tolist())
        sources = [s for i, s in enumerate(sources) if i in keep]
    log(f"{len(sources)} sources, generators: {', '.join(names)}" + (f" + {SD15}" if sd15_dir else ""))

    windows, plans, skipped, calibration = {}, [], {}, []
    excluded = held_out_hashes(list(holdout))
    for s in sources:
        if excluded and hashlib.sha256(paths[s].read_bytes()).hexdigest() in excluded:
            skipped[s] = "held out: the same file is in --holdout"
            continue
        split = split_of(seed, s, val_fraction, calibration_fraction)
        if split == "calibration":
            calibration.append(s)
            continue
        try:
            windows[s], plan = load_window(paths[s], seed, s, split)
            plans.append(plan)
        except (OSError, ValueError) as e:  # one bad photo never stops the build
            skipped[s] = f"{type(e).__name__}: {e}"
    for s in calibration:  # whole files, untouched: the threshold is chosen on photos as users have them
        target = out / "calibration" / s.replace("/", "_")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(paths[s].read_bytes())
    log(f"decoded {len(plans)} windows, {len(calibration)} calibration photos, skipped {len(skipped)} "
        f"({time.perf_counter() - start:.0f}s)")

    train_windows = [windows[p.source] for p in plans if p.split == "train"]
    prepared = {}
    for n, g in gens.items():
        t = time.perf_counter()
        prepared[n] = g.prepare(train_windows, out / "generators", seed)
        prepared[n]["prepare_s"] = round(time.perf_counter() - t, 1)
        log(f"prepared {n}: {prepared[n]}")
    qualities = []
    if sd15_dir:
        t = time.perf_counter()
        qualities = sd15.estimate_webp_qualities(sd15_dir, webp_sample, seed)
        prepared[SD15] = {"webp_qualities": qualities, "prepare_s": round(time.perf_counter() - t, 1)}
        log(f"prepared {SD15}: estimated WebP qualities {qualities}")

    assignment = assign_generators(plans, names, seed, shares)
    done = landed_pairs(out)
    if done:
        log(f"resuming: {len(done)} pairs already on disk are kept")
    rows, gen_seconds = [], defaultdict(float)
    with open(out / "manifest.csv", "w", newline="") as manifest:  # rows land as pairs do: a cut-short build stays usable
        writer = csv.DictWriter(manifest, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()

        def land(row: dict, seconds: float) -> None:
            rows.append({**row, "generate_s": round(seconds, 4)})
            writer.writerow(rows[-1])
            manifest.flush()
            if len(rows) % 200 == 0:
                log(f"{len(rows)} pairs ({time.perf_counter() - start:.0f}s)")

        for plan in plans:
            name = assignment[plan.source]
            if (plan.source, name) in done:
                land(done[plan.source, name], float(done[plan.source, name]["generate_s"]))
                continue
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
            land(write_pair(out, plan, name, windows[plan.source], fake), time.perf_counter() - t)
        if sd15_dir:
            for plan, real, fake, quality, tile in sd15_pairs(sd15_dir, plans, paths, seed, val_fraction, qualities):
                if (plan.source, SD15) in done:
                    land(done[plan.source, SD15], float(done[plan.source, SD15]["generate_s"]))
                    continue
                t = time.perf_counter()
                land({**write_pair(out, plan, SD15, real, fake, quality), "fake_source": tile}, time.perf_counter() - t)

    families = names + [SD15] * bool(sd15_dir)
    counts = Counter((r["split"], r["generator"]) for r in rows)
    stats = {
        "pairs": len(rows),
        "counts": {split: {n: counts[split, n] for n in families} for split in ("train", "val")},
        "calibration_photos": len(calibration),
        "formats": dict(Counter(r["format"] for r in rows)),
        "skipped": skipped,
        "generators": {n: {**prepared[n], "images": sum(counts[s, n] for s in ("train", "val")),
                           "generate_s": round(gen_seconds[n], 1)} for n in families},
        "sharpness": sharpness_summary(rows, families),
        "wall_s": round(time.perf_counter() - start, 1),
        "args": args,
        "python": platform.python_version(),
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    log(f"done: {len(rows)} pairs in {stats['wall_s']}s -> {out}")
    return stats


BUILD_RECORD = "build.json"


def claim_output(out: Path, args: dict) -> None:
    """Record the build's arguments in ``out``; refuse a folder a build with other arguments wrote.

    Every choice is a function of these arguments, so a rerun with the same ones may keep what an earlier,
    cut-short run landed (``landed_pairs``) and the result equals an uninterrupted build."""
    out.mkdir(parents=True, exist_ok=True)
    record = out / BUILD_RECORD
    if record.exists() and json.loads(record.read_text()) != args:
        raise RuntimeError(f"{out} holds a corpus built with other arguments ({record}); use another --out")
    if not record.exists() and (out / "manifest.csv").exists():
        raise RuntimeError(f"{out} holds a corpus without {BUILD_RECORD}: its arguments are unknown; use another --out")
    record.write_text(json.dumps(args, indent=2) + "\n")


def landed_pairs(out: Path) -> dict[tuple[str, str], dict]:
    """(source, generator) -> manifest row, for the pairs an earlier run of this build wrote completely."""
    for stale in out.glob("*/*/*/*.part"):  # a write the earlier run did not finish
        stale.unlink()
    manifest = out / "manifest.csv"
    if not manifest.exists():
        return {}
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    return {(r["source"], r["generator"]): {**r, "sharpness_real": float(r["sharpness_real"]),
                                            "sharpness_fake": float(r["sharpness_fake"])}
            for r in rows if (out / r["real_path"]).is_file() and (out / r["fake_path"]).is_file()}


def sharpness_summary(rows: list[dict], families: list[str]) -> dict:
    """Per generator: median real and fake sharpness and the median fake/real ratio (1.0: as sharp as the reals)."""
    summary = {}
    for name in families:
        pairs = [(r["sharpness_real"], r["sharpness_fake"]) for r in rows if r["generator"] == name]
        if pairs:
            real, fake = np.array(pairs).T
            summary[name] = {"real": round(float(np.median(real)), 1), "fake": round(float(np.median(fake)), 1),
                             "fake_over_real": round(float(np.median(fake / np.maximum(real, 1e-9))), 3)}
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reals", type=Path, nargs="+", required=True, help="folders of real photos (searched recursively)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="use a seeded random subset of N sources")
    ap.add_argument("--generators", nargs="+", default=list(generators.NAMES), choices=generators.NAMES)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--calibration-fraction", type=float, default=0.0,
                    help="share of sources kept whole in calibration/0_real for choosing the threshold")
    ap.add_argument("--holdout", type=Path, nargs="*", default=[],
                    help="folders whose images must never enter the corpus (e.g. an evaluation set)")
    ap.add_argument("--taef2-weights", type=Path, help="folder with taef2_encoder.pth and taef2_decoder.pth")
    ap.add_argument("--sd15", type=Path, help="folder of Stable Diffusion 1.5 WebP previews: adds the sd15 family")
    ap.add_argument("--autogan-steps", type=int, default=300, help="training steps per AutoGAN simulator")
    ap.add_argument("--autogan-width", type=int, default=32)
    args = ap.parse_args(argv)
    for folder in [*args.reals, *args.holdout, *filter(None, [args.sd15, args.taef2_weights])]:
        if not folder.is_dir():
            ap.error(f"{folder} is not a folder")
    if "taef2" in args.generators and args.taef2_weights is None:
        ap.error("the taef2 generator needs --taef2-weights DIR (or leave it out of --generators)")
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        build(args.reals, args.out, args.seed, args.limit, args.generators, args.val_fraction,
              args.autogan_steps, args.autogan_width, log=lambda m: print(m, flush=True),
              calibration_fraction=args.calibration_fraction, holdout=args.holdout,
              taef2_weights=args.taef2_weights, sd15_dir=args.sd15)
    except RuntimeError as e:  # a generator that cannot run here
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
