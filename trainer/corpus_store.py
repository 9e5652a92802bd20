"""What the corpus builder writes: each pair's images (through a temporary name, so a killed build leaves no
half image), manifest.csv row by row, the build record that a resumed build must match, and the pairs an
earlier run of the same build already landed."""
from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ipdscan.reports.publish import write_atomically

from . import generators, local_fakes, sd15
from .corpus_plan import Plan

MANIFEST_FIELDS = ["source", "split", "generator", "real_path", "fake_path", "format", "quality",
                   "camera_quality", "webp_quality", "window_top", "window_left", "fake_source",
                   "sharpness_real", "sharpness_fake", "generate_s", "scale", "window_height", "real_camera_pass",
                   "local_area"]
BUILD_RECORD = "build.json"


def folder_family(folder: str) -> str:
    """A corpus generator folder's family, from the generators' own names (so a generator added to a family is
    ablated and packed with it): every local_* folder is the "local" family; sd15, the faces
    (``faces.GENERATOR``) and unknown folders are their own."""
    if folder.startswith(local_fakes.PREFIX):
        return "local"
    return generators.family_of(folder) if folder in generators.NAMES else folder


def sharpness(pixels: np.ndarray) -> float:
    """Mean squared 4-neighbour Laplacian of the luma: high-frequency energy, to compare fakes with reals."""
    luma = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    laplacian = 4 * luma[1:-1, 1:-1] - luma[:-2, 1:-1] - luma[2:, 1:-1] - luma[1:-1, :-2] - luma[1:-1, 2:]
    return float(np.mean(laplacian ** 2))


def jpeg_roundtrip(pixels: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def store(pixels: np.ndarray, path: Path, plan: Plan) -> None:
    """The image in the plan's storage format; whole or not at all (a rerun keeps only whole pairs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    params = {"format": "PNG"} if plan.format == "png" else {"format": "JPEG", "quality": plan.quality}
    write_atomically(path, lambda file: Image.fromarray(pixels).save(file, **params), binary=True)


def write_pair(out: Path, plan: Plan, generator: str, real: np.ndarray, fake: np.ndarray,
               webp_quality: int | None = None) -> dict:
    """Give the fake its camera JPEG pass (the real too when its own camera JPEG grid is gone or it never had
    one), and both a WebP pass for sd15; store both the same way; returns the manifest row."""
    fake = jpeg_roundtrip(fake, plan.camera_quality)
    if plan.real_camera_pass:
        real = jpeg_roundtrip(real, plan.camera_quality)
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
            "scale": plan.scale, "window_height": plan.height, "real_camera_pass": int(plan.real_camera_pass),
            "sharpness_real": round(sharpness(real), 2), "sharpness_fake": round(sharpness(fake), 2)}


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
    for stale in out.glob("*/*/*/.*.part"):  # a write the earlier run did not finish
        stale.unlink()
    manifest = out / "manifest.csv"
    if not manifest.exists():
        return {}
    with open(manifest, newline="") as manifest_file:
        rows = list(csv.DictReader(manifest_file))
    return {(row["source"], row["generator"]): {**row, "sharpness_real": float(row["sharpness_real"]),
                                                "sharpness_fake": float(row["sharpness_fake"])}
            for row in rows if (out / row["real_path"]).is_file() and (out / row["fake_path"]).is_file()}


class Manifest:
    """manifest.csv, one row per pair as it lands (a cut-short build stays usable), and the pairs an earlier,
    cut-short run of the same build landed, which are kept instead of generated again."""

    def __init__(self, out: Path, log=print, started: float = 0.0):
        self.done = landed_pairs(out)  # read before the file is rewritten below
        self.rows: list[dict] = []
        self.log, self.started = log, started
        self.file = open(out / "manifest.csv", "w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=MANIFEST_FIELDS)
        self.writer.writeheader()

    def kept(self, source: str, generator: str) -> bool:
        """Land the pair an earlier run wrote for (source, generator), if it did; False if it must be made."""
        row = self.done.get((source, generator))
        if row is not None:
            self.land(row, float(row["generate_s"]))
        return row is not None

    def land(self, row: dict, seconds: float) -> None:
        self.rows.append({**row, "generate_s": round(seconds, 4)})
        self.writer.writerow(self.rows[-1])
        self.file.flush()
        if len(self.rows) % 200 == 0:
            self.log(f"{len(self.rows)} pairs ({time.perf_counter() - self.started:.0f}s)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def sharpness_summary(rows: list[dict], families: list[str]) -> dict:
    """Per generator: median real and fake sharpness and the median fake/real ratio (1.0: as sharp as the reals)."""
    summary = {}
    for name in families:
        pairs = [(row["sharpness_real"], row["sharpness_fake"]) for row in rows if row["generator"] == name]
        if pairs:
            real, fake = np.array(pairs).T
            summary[name] = {"real": round(float(np.median(real)), 1), "fake": round(float(np.median(fake)), 1),
                             "fake_over_real": round(float(np.median(fake / np.maximum(real, 1e-9))), 3)}
    return summary
