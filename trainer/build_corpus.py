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
Stable Diffusion 1.5 windows with second windows of the photos (``trainer/sd15.py``). The choices for each source are
``corpus_plan.py``'s, what lands on disk ``corpus_store.py``'s. Layout (CNNSpot):

    <out>/{train,val}/<generator>/{0_real,1_fake}/<source>.{png,jpg}
    <out>/calibration/<source file>     (byte-for-byte copies; no label folder, so training never sees them)
    <out>/manifest.csv  <out>/stats.json  <out>/generators/ (trained simulator weights)
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ipdscan.reports.publish import write_atomically
from trainer import faces, generators, local_fakes, sd15
from trainer.corpus_plan import (
    CAMERA_QUALITY,
    GRID,
    JPEG_EXTENSIONS,
    PNG_PROBABILITY,
    STORAGE_QUALITY,
    WINDOW,
    Framing,
    Plan,
    assign_generators,
    choose_sources,
    cut,
    decoded_rgb,
    file_sha256,
    held_out_hashes,
    list_sources,
    load_window,
    plan_for,
    source_rng,
    split_of,
)
from trainer.corpus_store import Manifest, claim_output, sharpness_summary, write_pair

# Turns per round of the family round-robin. TAEF2 stands for the latent-diffusion decoders that modern
# generators share; Real-ESRGAN and TAEF2 carried v2's diffusion AP; Real-CUGAN holds 18 models.
DEFAULT_SHARES = {"taef2": 2, "realesrgan": 2, "realcugan": 2}
SD15 = "sd15"
NO_GENERATORS = "none"


def resolve_families(requested: list[str]) -> dict[str, list[str]]:
    """``--generators`` names families or single generators; a single generator is a family of its own."""
    out = {}
    for name in requested:
        if name in generators.FAMILIES:
            out[name] = list(generators.FAMILIES[name])
        elif name in generators.NAMES:
            out[name] = [name]
        else:
            raise ValueError(f"unknown generator or family {name!r}; choose from "
                             f"{', '.join([*generators.FAMILIES, *generators.NAMES])}")
    return out


def sd15_pairs(sd15_dir: Path, plans: list[Plan], paths: dict[str, Path], seed: int, val_fraction: float,
               qualities: list[int]):
    """(plan, real window, fake window, webp quality, tile name) for the SD 1.5 family.

    Each train/val photo gives a second window (its own seeded offset and storage draw) paired with one
    SD tile of the same split; tiles split by their preview grid, so no grid is in both splits."""
    tiles = sd15.list_tiles(sd15_dir)
    for split in ("train", "val"):
        pool = [tile for tile in tiles if split_of(seed, tile.grid, val_fraction) == split]
        pool = [pool[i] for i in np.random.default_rng([seed, 1515, split == "val"]).permutation(len(pool))]
        sources = sorted(plan.source for plan in plans if plan.split == split)
        for source, tile in zip(sources, pool):
            image = decoded_rgb(paths[source])
            plan = plan_for(seed, source, image.size, val_fraction, purpose=SD15, split=split,
                            jpeg_source=paths[source].suffix.lower() in JPEG_EXTENSIONS)
            fake, dy, dx = sd15.window(sd15_dir, tile, WINDOW, seed)
            quality = qualities[int(source_rng(seed, source, "webp").integers(len(qualities)))]
            yield plan, cut(image, plan), fake, quality, f"{tile.grid}#{tile.index}@{dy},{dx}"


def take_sources(paths: dict[str, Path], sources: list[str], seed: int, val_fraction: float,
                 calibration_fraction: float = 0.0, holdout: list[Path] = (),
                 framing: Framing = Framing()) -> tuple[dict, list[Plan], dict, list[str]]:
    """The first stage of a build: each source's window and plan (the sources a model trained on the corpus sees),
    why a source was skipped, and the sources kept whole for calibration."""
    windows, plans, skipped, calibration = {}, [], {}, []
    excluded = held_out_hashes(list(holdout))
    for source in sources:
        if excluded and file_sha256(paths[source]) in excluded:
            skipped[source] = "held out: the same file is in --holdout"
            continue
        split = split_of(seed, source, val_fraction, calibration_fraction)
        if split == "calibration":
            calibration.append(source)
            continue
        try:
            windows[source], plan = load_window(paths[source], seed, source, split, framing)
            plans.append(plan)
        except (OSError, ValueError) as exc:  # one bad photo never stops the build
            skipped[source] = f"{type(exc).__name__}: {exc}"
    return windows, plans, skipped, calibration


def build(reals: Path | list[Path], out: Path, seed: int = 0, limit: int | None = None, names: list[str] | None = None,
          val_fraction: float = 0.1, autogan_steps: int = 300, autogan_width: int = 32, log=print, *,
          calibration_fraction: float = 0.0, holdout: list[Path] = (), taef2_weights: Path | None = None,
          sd15_dir: Path | None = None, shares: dict[str, int] | None = None, webp_sample: int = 24,
          framing: Framing = Framing(), faces_dir: Path | None = None) -> dict:
    start = time.perf_counter()
    roots = [Path(root) for root in (reals if isinstance(reals, (list, tuple)) else [reals])]
    families = resolve_families(list(generators.DEFAULT_FAMILIES if names is None else names))
    names = [name for members in families.values() for name in members]
    shares = DEFAULT_SHARES if shares is None else shares
    args = {"reals": [str(root) for root in roots], "seed": seed, "limit": limit, "generators": names,
            "val_fraction": val_fraction, "calibration_fraction": calibration_fraction,
            "holdout": [str(folder) for folder in holdout], "taef2_weights": str(taef2_weights) if taef2_weights else None,
            "sd15": str(sd15_dir) if sd15_dir else None, "shares": shares, "autogan_steps": autogan_steps,
            "autogan_width": autogan_width, "window": WINDOW, "grid": GRID, "camera_quality": list(CAMERA_QUALITY),
            "storage_quality": list(STORAGE_QUALITY), "png_probability": PNG_PROBABILITY,
            "families": families, "framing": {**asdict(framing), "downscale_range": list(framing.downscale_range)},
            "faces": str(faces_dir) if faces_dir else None}
    claim_output(out, args)
    gens = {name: generators.make(name, autogan_steps=autogan_steps, autogan_width=autogan_width,
                                  taef2_weights=taef2_weights)
            for name in names}
    paths = list_sources(roots)
    sources = choose_sources(paths, seed, limit)
    log(f"{len(sources)} sources, families: {', '.join(families) or 'none'}" + (f" + {SD15}" if sd15_dir else "")
        + (f" + {faces.GENERATOR}" if faces_dir else ""))
    face_counts = faces.copy_faces(faces_dir, out, seed, val_fraction=val_fraction,
                                   calibration_fraction=calibration_fraction) if faces_dir else {}

    windows, plans, skipped, calibration = take_sources(paths, sources, seed, val_fraction, calibration_fraction,
                                                        holdout, framing)
    for source in calibration:  # whole files, untouched: the threshold is chosen on photos as users have them
        target = out / "calibration" / source.replace("/", "_")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, lambda file: file.write(paths[source].read_bytes()), binary=True)
    log(f"decoded {len(plans)} windows, {len(calibration)} calibration photos, skipped {len(skipped)} "
        f"({time.perf_counter() - start:.0f}s)")

    train_windows = [windows[plan.source] for plan in plans if plan.split == "train"]
    prepared = {}
    for name, generator in gens.items():
        began = time.perf_counter()
        prepared[name] = generator.prepare(train_windows, out / "generators", seed)
        prepared[name]["prepare_s"] = round(time.perf_counter() - began, 1)
        log(f"prepared {name}: {prepared[name]}")
    qualities = []
    if sd15_dir:
        began = time.perf_counter()
        qualities = sd15.estimate_webp_qualities(sd15_dir, webp_sample, seed)
        prepared[SD15] = {"webp_qualities": qualities, "prepare_s": round(time.perf_counter() - began, 1)}
        log(f"prepared {SD15}: estimated WebP qualities {qualities}")

    paired = plans if families else []  # --generators none: only the --sd15 / --faces families
    assignment = assign_generators(paired, families, seed, shares)
    gen_seconds = defaultdict(float)
    with Manifest(out, log, start) as manifest:
        if manifest.done:
            log(f"resuming: {len(manifest.done)} pairs already on disk are kept")
        for plan in paired:
            name = assignment[plan.source]
            folder = local_fakes.PREFIX + name if plan.local else name
            if manifest.kept(plan.source, folder):
                continue
            real = windows[plan.source]
            began = time.perf_counter()
            try:
                fake = gens[name](real)
            except Exception as exc:  # one failed generation never stops the build
                skipped[plan.source] = f"{name} failed: {type(exc).__name__}: {exc}"
                continue
            gen_seconds[folder] += time.perf_counter() - began
            if fake.shape != real.shape:
                skipped[plan.source] = f"{name} returned {fake.shape}, expected {real.shape}"
                continue
            local_area = ""
            if plan.local:
                fake, local_area = local_fakes.paste(real, fake, source_rng(seed, plan.source, "local"))
            manifest.land({**write_pair(out, plan, folder, real, fake), "local_area": local_area},
                          time.perf_counter() - began)
        if sd15_dir:
            for plan, real, fake, quality, tile in sd15_pairs(sd15_dir, plans, paths, seed, val_fraction, qualities):
                if manifest.kept(plan.source, SD15):
                    continue
                began = time.perf_counter()
                manifest.land({**write_pair(out, plan, SD15, real, fake, quality), "fake_source": tile},
                              time.perf_counter() - began)
    rows = manifest.rows

    folders = sorted({row["generator"] for row in rows})
    counts = Counter((row["split"], row["generator"]) for row in rows)
    stats = {
        "pairs": len(rows),
        "counts": {split: {folder: counts[split, folder] for folder in folders} for split in ("train", "val")},
        "families": {family: sum(count for (_, folder), count in counts.items()
                                 if folder.removeprefix(local_fakes.PREFIX) in members)
                     for family, members in {**families, **({SD15: [SD15]} if sd15_dir else {})}.items()},
        "local_fakes": sum(count for (_, folder), count in counts.items() if folder.startswith(local_fakes.PREFIX)),
        "downscaled_pairs": sum(float(row["scale"] or 1) != 1.0 for row in rows),
        "portrait_pairs": sum(int(row["window_height"] or WINDOW) != WINDOW for row in rows),
        "faces": face_counts,
        "calibration_photos": len(calibration) + sum(count.get("real", 0) for split, count in face_counts.items()
                                                     if split == "calibration"),
        "formats": dict(Counter(row["format"] for row in rows)),
        "skipped": skipped,
        "generators": {folder: {**prepared.get(folder.removeprefix(local_fakes.PREFIX), {}),
                                "images": sum(counts[split, folder] for split in ("train", "val")),
                                "generate_s": round(gen_seconds[folder], 1)} for folder in folders},
        "sharpness": sharpness_summary(rows, folders),
        "wall_s": round(time.perf_counter() - start, 1),
        "args": args,
        "python": platform.python_version(),
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    log(f"done: {len(rows)} pairs in {stats['wall_s']}s -> {out}")
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reals", type=Path, nargs="+", required=True, help="folders of real photos (searched recursively)")
    parser.add_argument("--out", type=Path, help="the corpus folder (required unless --list-sources)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="use a seeded random subset of N sources")
    parser.add_argument("--generators", nargs="+", default=list(generators.DEFAULT_FAMILIES),
                    choices=[*generators.FAMILIES, *generators.NAMES, NO_GENERATORS], metavar="NAME",
                    help="families (each photo draws one member) or single generators (default: %(default)s); "
                         f"'{NO_GENERATORS}': only the --sd15 and --faces families, e.g. to add SD 1.5 to a built corpus")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--calibration-fraction", type=float, default=0.0,
                    help="share of sources kept whole in calibration/ for choosing the threshold")
    parser.add_argument("--holdout", type=Path, nargs="*", default=[],
                    help="folders whose images must never enter the corpus (e.g. an evaluation set)")
    parser.add_argument("--taef2-weights", type=Path, help="folder with taef2_encoder.pth and taef2_decoder.pth")
    parser.add_argument("--sd15", type=Path, help="folder of Stable Diffusion 1.5 WebP previews: adds the sd15 family")
    parser.add_argument("--faces", type=Path, help="train-faces folder (real/, fake/): adds the StyleGAN2 faces family")
    parser.add_argument("--downscale-fraction", type=float, default=0.0,
                    help="share of photos resized by U[0.5, 0.9] before their window is cut (web photos are)")
    parser.add_argument("--portrait-fraction", type=float, default=0.0,
                    help="share of portrait photos given a 256x320 portrait window")
    parser.add_argument("--local-fraction", type=float, default=0.0,
                    help="share of fakes made local: only a masked 10-50%% region comes from the generator")
    parser.add_argument("--autogan-steps", type=int, default=300, help="training steps per AutoGAN simulator")
    parser.add_argument("--autogan-width", type=int, default=32)
    parser.add_argument("--list-sources", action="store_true",
                    help="only print, one per line, the source files whose windows a build with these arguments pairs: "
                         "what a model trained on it saw (for trainer.calibrate --exclude); builds nothing")
    args = parser.parse_args(argv)
    framing = Framing(downscale_fraction=args.downscale_fraction, portrait_fraction=args.portrait_fraction,
                      local_fraction=args.local_fraction)
    for folder in [*args.reals, *args.holdout, *filter(None, [args.sd15, args.taef2_weights, args.faces])]:
        if not folder.is_dir():
            parser.error(f"{folder} is not a folder")
    if args.list_sources:
        paths = list_sources(args.reals)
        _, plans, _, _ = take_sources(paths, choose_sources(paths, args.seed, args.limit), args.seed,
                                      args.val_fraction, args.calibration_fraction, args.holdout, framing)
        seen = [str(paths[plan.source]) for plan in plans]
        if args.faces:
            seen += [str(path) for path in faces.trained_files(args.faces, args.seed, args.val_fraction, args.calibration_fraction)]
        print("\n".join(seen))
        return 0
    if args.out is None:
        parser.error("--out is required")
    if NO_GENERATORS in args.generators:
        if args.generators != [NO_GENERATORS] or not (args.sd15 or args.faces):
            parser.error(f"--generators {NO_GENERATORS} stands alone and needs --sd15 or --faces")
        args.generators = []
    if generators.TAEF2.name in args.generators and args.taef2_weights is None:
        parser.error("the taef2 generator needs --taef2-weights DIR (or leave it out of --generators)")
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        build(args.reals, args.out, args.seed, args.limit, args.generators, args.val_fraction,
              args.autogan_steps, args.autogan_width, log=lambda message: print(message, flush=True),
              calibration_fraction=args.calibration_fraction, holdout=args.holdout,
              taef2_weights=args.taef2_weights, sd15_dir=args.sd15, framing=framing, faces_dir=args.faces)
    except RuntimeError as e:  # a generator that cannot run here
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
