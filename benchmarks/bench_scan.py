"""Scan throughput: two naive references against the real `ipdscan scan`, on one seeded corpus and one device.

    python benchmarks/bench_scan.py                          # 640x480 JPEGs on the CPU, ~1-3 min on 2 cores
    python benchmarks/bench_scan.py --size all --repeat 2 --out table.md
    python benchmarks/bench_scan.py --device cuda --n 2048 --batch-size 128
    python benchmarks/bench_scan.py --memory-check           # peak memory of a 10k- and a 100k-image scan

Rows (every one runs in a fresh process, so each pays its own start-up and its peak RSS is its own):
  (a) cnnspot     CNNSpot-style: PIL decode + Resize(256) + CenterCrop(224) in DataLoader workers,
                  fp32 eager torchvision ResNet-50 (random weights), contiguous tensors
  (b) naive       IPD-Net as the paper describes it: PIL decode + reflect-pad/centre-crop in workers,
                  resize 256 + normalise, fp32 eager `model(x)`, no autocast, no channels_last
  (c) scan        `python -m ipdscan scan DIR --weights W --out X.jsonl --quiet`: wall clock, start-up included;
      scan steady the same with the start-up taken out: (N-1) / (T(N images) - T(1 image))
  model-only      the same uint8 crops, decoded beforehand: naive `model(to_model_input(x))` (on the CPU also
                  in calls of as few images as the fast path uses) and Detector.score at each precision
                  (bf16 only where the device computes it natively)

Peak RSS comes from os.wait4 on each child: the largest of the process and the workers it waited for.
Peak PSS sums the child's whole process tree (shared pages counted once), sampled from /proc every 0.5 s.
GPU utilisation (mean/max of nvidia-smi samples every 0.5 s) is shown when --device is cuda.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
SIZES = ("640x480", "12mp", "png-mix")
PNG_SIZES = ((256, 256), (512, 384), (800, 600), (1024, 1024), (333, 517))
PNG_MODES = ("RGB", "RGB", "RGBA", "L")


# ---------------------------------------------------------------- corpus

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


# ---------------------------------------------------------------- children: one configuration each

def steady_scan(args) -> dict:
    """The scan job in this process (into a JSONL report, as `ipdscan scan` runs it), timed batch by batch: where
    the start-up goes, and the rate once running, which a CLI run of a few seconds cannot separate from start-up."""
    started = time.perf_counter()
    from ipdscan import ScanOptions, load_detector
    from ipdscan.job import ScanJob
    imported = time.perf_counter()
    detector = load_detector(args.weights, args.device)
    loaded = time.perf_counter()
    options = ScanOptions(batch_size=args.batch_size, workers=args.workers, decode=args.decode)
    marks = []
    with tempfile.TemporaryDirectory() as tmp, ScanJob([args.files], options, out=Path(tmp) / "steady.jsonl") as job:
        job.start(detector)
        outcome = job.run(on_batch=lambda stats: marks.append((time.perf_counter(), stats.scanned)))
    count = outcome.stats.scanned
    if outcome.stopped_by or outcome.stats.errors:
        sys.exit(f"steady scan: {outcome.stats.errors} of {count} images failed ({outcome.stopped_by or 'finished'})")
    skip = max(4, len(marks) // 10)  # the first batches carry worker start-up, nvjpeg and cuDNN set-up
    if len(marks) <= skip:
        sys.exit(f"steady scan: {len(marks)} batches are too few to measure a steady rate; raise --steady-copies")
    (first_time, first_count), (end, _) = marks[skip - 1], marks[-1]
    suffix = f", --decode {args.decode}" if args.decode != "auto" else ""
    return {"rows": [
        {"name": f"start-up: import ipdscan (torch){suffix}", "images": 1, "seconds": imported - started},
        {"name": f"start-up: load weights onto the device{suffix}", "images": 1, "seconds": loaded - imported},
        {"name": f"start-up: first batch (workers, decoder, kernels){suffix}", "images": 1, "seconds": marks[0][0] - loaded},
        {"name": f"scan in-process, weights loaded to last row{suffix}", "images": count, "seconds": end - loaded},
        {"name": f"scan in-process, steady (after {skip} batches){suffix}", "images": count - first_count,
         "seconds": end - first_time}]}


def child_main(args) -> dict:
    """Runs in a fresh process; returns what it measured (printed as JSON for the parent)."""
    if args.child == "steady":
        return steady_scan(args)
    import torch
    from torch.utils.data import DataLoader, Dataset

    from ipdscan.preprocess import crop, to_model_input
    from ipdscan.runtime import default_workers, resolve_device
    from ipdscan.weights import load_checkpoint

    device = resolve_device(args.device)
    files = Path(args.files).read_text().split("\n")
    workers = default_workers(args.workers, device)
    checkpoint = load_checkpoint(args.weights)
    preprocessing = checkpoint.preprocessing

    def pil_rgb(path: str) -> torch.Tensor:
        with Image.open(path) as im:
            return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)

    class Images(Dataset):
        def __init__(self, transform):
            self.transform = transform

        def __len__(self):
            return len(files)

        def __getitem__(self, i):
            return self.transform(files[i])

    if args.child == "cnnspot":
        from torchvision import transforms
        from torchvision.models import resnet50
        model = resnet50(weights=None, num_classes=1).to(device).eval()
        t = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
        dataset, run = Images(lambda f: t(Image.open(f).convert("RGB"))), model
        warm = torch.zeros(args.batch_size, 3, 224, 224)
    elif args.child == "naive":
        model = checkpoint.model.to(device).eval()
        dataset = Images(lambda f: crop(pil_rgb(f), preprocessing))
        run = lambda crops: model(to_model_input(crops, preprocessing))  # noqa: E731
        warm = torch.zeros(args.batch_size, 3, preprocessing.crop, preprocessing.crop, dtype=torch.uint8)
    else:
        return model_only(args, checkpoint, device, files)

    with torch.inference_mode():
        run(warm.to(device))  # oneDNN / cuDNN pick their kernels on the first call: not what we measure
        sync(device)
        started = time.perf_counter()
        loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=workers,
                            pin_memory=device.type == "cuda", prefetch_factor=4 if workers else None)
        count = 0
        for batch in loader:
            run(batch.to(device, non_blocking=True)).float().cpu()
            count += len(batch)
        sync(device)
        seconds = time.perf_counter() - started
    return {"rows": [{"name": args.child, "images": count, "seconds": seconds}]}


def model_only(args, checkpoint, device, files) -> dict:
    """The model alone, on crops decoded up front: naive eager IPD-Net and Detector.score at each precision."""
    import torch

    from ipdscan.decode import decode
    from ipdscan.preprocess import crop, to_model_input
    from ipdscan.runtime import has_native_bf16
    from ipdscan.score import CPU_MICRO_BATCH, Detector
    from ipdscan.weights import load_checkpoint

    files = files[:args.model_images]  # decoded up front, one by one: enough for a stable rate, not the whole set
    crops = torch.stack([crop(decode(Path(f).read_bytes()).pixels, checkpoint.preprocessing) for f in files])
    batches = list(crops.split(args.batch_size))
    naive = load_checkpoint(args.weights).model.to(device).eval()  # its own copy: a Detector converts its model

    def run_naive(crops):
        return naive(to_model_input(crops.to(device), checkpoint.preprocessing))

    def run_naive_small(crops):  # what the fast path's CPU micro-batching alone gives the naive model
        return torch.cat([run_naive(part) for part in crops.split(CPU_MICRO_BATCH["fp32"])])

    configs = [("model naive fp32", run_naive)]
    if device.type == "cpu":
        configs.append((f"model naive fp32, {CPU_MICRO_BATCH['fp32']} images per call", run_naive_small))
    setups = {}
    precisions = ["fp32"]
    if has_native_bf16(device):
        precisions += ["mixed", "bf16"]
    for precision in precisions:
        started = time.perf_counter()
        detector = Detector(checkpoint, device, precision)
        setup = time.perf_counter() - started
        configs.append((f"model Detector.score {precision}", detector.score))
        setups[configs[-1][0]] = setup
    seconds = {name: float("inf") for name, _ in configs}
    with torch.inference_mode():
        for name, score in configs:
            score(batches[0])
        for _ in range(args.repeat):  # interleaved, so a burst of other work slows one round, not one configuration
            for name, score in configs:
                sync(device)
                started = time.perf_counter()
                for _ in range(args.model_passes):
                    for batch in batches:
                        score(batch).float().cpu()
                sync(device)
                seconds[name] = min(seconds[name], time.perf_counter() - started)
    rows = [{"name": name, "images": len(crops) * args.model_passes, "seconds": t, "setup": setups.get(name)}
            for name, t in seconds.items()]
    return {"rows": rows + stage_ceilings(args, checkpoint, device, files)}


def stage_ceilings(args, checkpoint, device, files) -> list[dict]:
    """What each stage of a scan does alone, to tell which one bounds the end-to-end rate:
    the workers (read, hash, parse headers or decode: the DataLoader with nothing downstream) and,
    where JPEGs are decoded on the device, that decode + crop on bytes already in memory."""
    import torch

    from ipdscan.decode import read_jpeg_header
    from ipdscan.device_decode import decode_jpegs
    from ipdscan.pipeline import ScanDataset, ScanOptions, collate, crops_of
    from torch.utils.data import DataLoader

    rows = []
    options = ScanOptions(batch_size=args.batch_size, workers=args.workers)
    on_device = options.decodes_on_device(device)
    workers = options.resolved_workers(device, on_device)
    dataset = ScanDataset(files, options, checkpoint.preprocessing, on_device)
    started, count = time.perf_counter(), 0
    for batch in DataLoader(dataset, batch_size=args.batch_size, num_workers=workers, collate_fn=collate,
                            prefetch_factor=4 if workers else None):
        count += len(batch.samples)
    rows.append({"name": f"stage: workers alone ({workers}, {'headers' if on_device else 'Pillow decode'})",
                 "images": count, "seconds": time.perf_counter() - started})
    if on_device:
        data = [Path(f).read_bytes() for f in files]
        encoded = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in data]
        headers = [read_jpeg_header(d) for d in data]

        def decode_and_crop():
            for start in range(0, len(encoded), args.batch_size):
                pixels = decode_jpegs(encoded[start:start + args.batch_size], headers[start:start + args.batch_size], device)
                torch.cat([crops_of(p, checkpoint.preprocessing, 1)[0] for p in pixels])

        decode_and_crop()  # nvjpeg's first call sets up its state
        sync(device)
        started = time.perf_counter()
        for _ in range(args.model_passes):
            decode_and_crop()
        sync(device)
        rows.append({"name": "stage: device decode + crop alone (bytes in memory)",
                     "images": len(encoded) * args.model_passes, "seconds": time.perf_counter() - started})
    return rows


def sync(device) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- parent: run children, measure, tabulate

def process_tree(root: int) -> list[int]:
    """``root`` and its descendants, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack += children.get(pid, [])
    return tree


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages (torch's libraries in every worker) counted once over the processes."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            return next((int(line.split()[1]) for line in rollup if line.startswith("Pss:")), 0)
    except (OSError, ValueError):
        return 0


class Sampler:
    """Every 0.5 s while a child runs: the summed PSS of its process tree (Linux) and, with a CUDA device,
    nvidia-smi's GPU utilisation."""

    def __init__(self, device: str, pid: int):
        index = device.partition(":")[2] or "0"
        self.gpu_command = (["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", index]
                            if device.startswith("cuda") and shutil.which("nvidia-smi") else None)
        self.pid, self.gpu, self.peak_pss_kib = pid, [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self):
        while not self._stop.wait(0.5):
            if Path("/proc/self/smaps_rollup").exists():
                self.peak_pss_kib = max(self.peak_pss_kib, sum(pss_kib(pid) for pid in process_tree(self.pid)))
            if self.gpu_command:
                try:
                    run = subprocess.run(self.gpu_command, capture_output=True, text=True, timeout=5)
                    self.gpu.append(float(run.stdout.split()[0]))
                except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                    pass

    def gpu_summary(self) -> str:
        return f"{np.mean(self.gpu):.0f} / {max(self.gpu):.0f}" if self.gpu else ""


@dataclass
class Measured:
    seconds: float
    rss_mb: float  # peak RSS of the largest process (the scan or one of its workers)
    pss_mb: float | None  # peak of the summed PSS of all its processes, sampled; None where /proc cannot tell
    gpu: str  # GPU utilisation %, "mean / max", or ""
    output: str


# Runs the measured command and writes its rusage. A child's ru_maxrss starts from the RSS of the process that
# spawned it (Linux carries the high-water mark across fork and exec), so the spawner must be this small one,
# not the benchmark itself, which holds torch and, after building the 12 MP set, much more.
LAUNCHER = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); _, status, usage = os.wait4(p.pid, 0); "
            "open(sys.argv[1], 'w').write(f'{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}')")


def run_measured(command: list[str], device: str, log: Path) -> Measured:
    """Run a child to completion and measure it; exit the benchmark if it fails."""
    usage = log.with_suffix(".rusage")
    with open(log, "w") as out:
        started = time.perf_counter()
        launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(usage), *command], stdout=out,
                                    stderr=subprocess.STDOUT, cwd=ROOT)
        with Sampler(device, launcher.pid) as sampler:
            launcher.wait()
        seconds = time.perf_counter() - started
    text = log.read_text()
    code, max_rss_kib = (int(v) for v in usage.read_text().split()) if usage.exists() else (-1, 0)
    if code != 0:
        sys.exit(f"benchmark step failed ({code}): {' '.join(command)}\n{text[-3000:]}")
    return Measured(seconds, max_rss_kib / 1024, sampler.peak_pss_kib / 1024 if sampler.peak_pss_kib else None,
                    sampler.gpu_summary(), text)  # ru_maxrss is in KiB on Linux


def scan_command(args, target: str, out: Path, decode: str = "auto") -> list[str]:
    command = [sys.executable, "-m", "ipdscan", "scan", target, "--weights", str(args.weights), "--out", str(out),
               "--quiet", "--device", args.device, "--batch-size", str(args.batch_size), "--decode", decode]
    return command + (["--workers", str(args.workers)] if args.workers is not None else [])


def scan_variants(args) -> list[tuple[str, str]]:
    """(row suffix, --decode) of each scan row: by default, on CUDA, the default (JPEGs decoded on the GPU) and
    Pillow in workers, which shows what the GPU decoding gives; on the CPU the default alone."""
    decodes = args.scan_decodes.split(",") if args.scan_decodes else (
        ["auto", "workers"] if args.device.startswith("cuda") else ["auto"])
    return [("" if decode == "auto" else f", --decode {decode}", decode) for decode in decodes]


def bench_size(args, size: str, work: Path) -> list[dict]:
    """Every configuration --repeat times, round-robin, keeping each one's fastest run: on a shared machine
    the fastest run is the one least disturbed by other work."""
    folder = build_corpus(args.cache, size, args.n, args.seed)
    files = corpus_files(folder)
    listing = work / f"{size}.files"
    listing.write_text("\n".join(files))
    one = work / "one"
    one.mkdir(exist_ok=True)
    shutil.copy(files[0], one)
    best: dict[str, dict] = {}

    def keep(row: dict):
        previous = best.get(row["name"])
        if previous is None or row["seconds"] < previous["seconds"]:
            best[row["name"]] = {**row, "size": size}

    def run_child(child: str, inputs: Path, *extra: str):
        """One child configuration in a fresh process; keeps every row it measured."""
        command = [sys.executable, __file__, "--child", child, "--files", str(inputs), "--weights", str(args.weights),
                   "--device", args.device, "--batch-size", str(args.batch_size), *extra]
        command += ["--workers", str(args.workers)] if args.workers is not None else []
        child_run = run_measured(command, args.device, work / f"{child}.log")
        for row in json.loads(child_run.output.strip().splitlines()[-1])["rows"]:
            keep({**row, "run": child_run})

    for _ in range(args.repeat):
        for _suffix, decode in scan_variants(args) if args.steady_copies else ():
            run_child("steady", link_copies(folder, args.steady_copies), "--decode", decode)
        if args.steady_only:
            continue
        for child in ("cnnspot", "naive", "model"):
            run_child(child, listing, "--repeat", str(args.repeat), "--model-images", str(args.model_images),
                      "--model-passes", str(args.model_passes))
        for suffix, decode in scan_variants(args):
            first = run_measured(scan_command(args, str(one), work / "one.jsonl", decode), args.device, work / "scan1.log")
            whole = run_measured(scan_command(args, str(folder), work / "scan.jsonl", decode), args.device,
                                 work / "scan.log")
            scored = sum(json.loads(line).get("status") == "ok" for line in open(work / "scan.jsonl") if line.strip())
            if scored != len(files):
                sys.exit(f"ipdscan scan scored {scored} of {len(files)} images: see {work / 'scan.jsonl'}")
            keep({"name": f"scan 1 image (start-up){suffix}", "images": 1, "seconds": first.seconds, "run": first})
            keep({"name": f"scan (end to end){suffix}", "images": len(files), "seconds": whole.seconds, "run": whole})
            if len(files) >= 8 and whole.seconds > first.seconds:  # fewer images: the difference is noise
                keep({"name": f"scan steady (start-up taken out){suffix}", "images": len(files) - 1,
                      "seconds": whole.seconds - first.seconds, "run": whole})
    return list(best.values())


def machine() -> str:
    import torch

    from ipdscan.runtime import cpu_has_native_bf16
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{model}, {cpus} CPUs, native bf16: {'yes' if cpu_has_native_bf16() else 'no'}{gpu}; "
            f"torch {torch.__version__}, Python {platform.python_version()}")


def table(rows: list[dict], device: str) -> str:
    gpu = device.startswith("cuda")
    lines = ["| set | configuration | images | seconds | images/s | vs (a) | vs (b) | peak RSS MB | peak PSS MB, all processes |"
             + (" GPU util % mean / max |" if gpu else ""),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if gpu else "")]
    for size in dict.fromkeys(row["size"] for row in rows):
        group = [row for row in rows if row["size"] == size]
        rate = {row["name"]: row["images"] / row["seconds"] for row in group}
        for row in group:
            name = row["name"] + (f" (set-up {row['setup']:.1f} s)" if row.get("setup") is not None else "")
            r, run = rate[row["name"]], row["run"]
            versus = lambda reference: f"{r / rate[reference]:.2f}x" if reference in rate else ""  # noqa: E731
            ratios = (f"{r:.1f} | {versus('cnnspot')} | {versus('naive')}" if row["images"] > 1
                      else " | | ")  # a start-up time, not a rate
            pss = f"{run.pss_mb:.0f}" if run.pss_mb is not None else ""
            line = f"| {size} | {name} | {row['images']} | {row['seconds']:.1f} | {ratios} | {run.rss_mb:.0f} | {pss} |"
            lines.append(line + (f" {run.gpu} |" if gpu else ""))
    return "\n".join(lines)


def ensure_weights(args, work: Path) -> None:
    if args.weights:
        return
    import torch

    from ipdscan.model import IPDConfig, IPDNet
    from ipdscan.preprocess import Preprocessing
    from ipdscan.weights import save_checkpoint
    torch.manual_seed(args.seed)
    args.weights = work / f"random-{args.variant}.pt"
    save_checkpoint(args.weights, IPDNet(IPDConfig(variant=args.variant)), Preprocessing(),
                    name=f"bench-random-{args.variant}", provenance={"purpose": "benchmark", "seed": args.seed})


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


def memory_check(args, work: Path) -> str:
    """Peak memory of scans over n/10 and n inputs: what grows with the number of inputs."""
    small, large = args.memory_check_n // 10, args.memory_check_n
    lines = ["| inputs | wall s | images/s | peak RSS MB, largest process | peak PSS MB, all processes |",
             "|---:|---:|---:|---:|---:|"]
    runs = []
    for count in (small, large):
        folder = link_farm(args.cache / "memcheck", count, args.seed)
        run = run_measured(scan_command(args, str(folder), work / f"mem{count}.jsonl"), args.device,
                           work / f"mem{count}.log")
        runs.append(run)
        pss = f"{run.pss_mb:.0f}" if run.pss_mb is not None else ""
        lines.append(f"| {count} | {run.seconds:.1f} | {count / run.seconds:.1f} | {run.rss_mb:.0f} | {pss} |")
    lines.append("")
    scale = 90_000 / (large - small)  # to 10k -> 100k, linearly
    for what, before, after in (("RSS of the largest process", runs[0].rss_mb, runs[1].rss_mb),
                                ("PSS of all processes", runs[0].pss_mb, runs[1].pss_mb)):
        if before is None or after is None:
            continue
        growth = after - before
        lines.append(f"- peak {what} grows by {growth:.1f} MB from {small} to {large} inputs; at that rate "
                     f"10k -> 100k costs {growth * scale:.1f} MB (target < 50 MB): "
                     f"{'PASS' if growth * scale < 50 else 'FAIL'}")
    return "\n".join(lines)


def compare_decoders(args) -> str:
    """Scores of the same images with JPEGs decoded on the device and by Pillow in workers, both in fp32 on
    --device: how far the device's decoder moves the scores. Uses --weights (default: the shipped weights)."""
    import torch

    from ipdscan import ScanOptions, load_detector, scan

    folder = build_corpus(args.cache, "640x480", args.n, args.seed)
    detector = load_detector(args.weights, args.device, "fp32")
    scores = {}
    for decode in ("device", "workers"):
        options = ScanOptions(decode=decode, batch_size=args.batch_size, workers=args.workers)
        scores[decode] = {r.input: r.score for r in scan([str(folder)], detector, options=options)}
    inputs = sorted(scores["workers"])
    device, workers = (torch.tensor([scores[d][i] for i in inputs], dtype=torch.float64) for d in ("device", "workers"))
    diff = (device - workers).abs()
    flips = int(((device >= 0.5) != (workers >= 0.5)).sum())
    return (f"{len(inputs)} JPEGs at 640x480 (quality 80-95), weights {args.weights or 'shipped default'}, fp32, "
            f"{args.device}: |score(device decode) - score(Pillow decode)| max {diff.max():.4f}, "
            f"99th percentile {diff.quantile(0.99):.4f}, mean {diff.mean():.5f}; "
            f"labels at 0.5 that differ: {flips} of {len(inputs)}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=192, help="640x480 images (12mp: n/8, png-mix: n/2)")
    p.add_argument("--size", choices=SIZES + ("all",), default="640x480")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: what scan picks)")
    p.add_argument("--variant", default="layer2", choices=("layer2", "layer3", "layer4"),
                   help="IPD-Net variant of the random checkpoint made when --weights is not given")
    p.add_argument("--weights", type=Path, default=None, help="checkpoint for (b), (c) and the model rows")
    p.add_argument("--cache", type=Path, default=ROOT / "data" / "bench", help="where the corpus is kept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=1, help="runs of each configuration; the fastest is reported")
    p.add_argument("--out", type=Path, default=None, help="also write the markdown report here")
    p.add_argument("--model-images", type=int, default=1024, help="crops decoded for the model-only rows")
    p.add_argument("--model-passes", type=int, default=1, help="passes over them per timed model-only run")
    p.add_argument("--compare-decoders", action="store_true",
                   help="only compare scores: --decode device against workers on --device, fp32, same images")
    p.add_argument("--memory-check", action="store_true", help="only the peak-RSS check (see --memory-check-n)")
    p.add_argument("--memory-check-n", type=int, default=100_000,
                   help="inputs in the large memory-check scan; the small one has a tenth")
    p.add_argument("--steady-copies", type=int, default=0,
                   help="also time the scan in-process over this many hard-linked copies of the set (start-up "
                        "stages and the steady rate)")
    p.add_argument("--steady-only", action="store_true", help="only those in-process rows (needs --steady-copies)")
    p.add_argument("--scan-decodes", default=None,
                   help="comma-separated --decode values of the scan rows (default: auto,workers on CUDA, auto on CPU)")
    p.add_argument("--decode", default="auto", help=argparse.SUPPRESS)
    p.add_argument("--child", choices=("cnnspot", "naive", "model", "steady"), help=argparse.SUPPRESS)
    p.add_argument("--files", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    args.repeat = max(1, args.repeat)
    if args.child:
        print(json.dumps(child_main(args)))
        return
    with tempfile.TemporaryDirectory(prefix="ipdscan-bench-") as tmp:
        work = Path(tmp)
        if not args.compare_decoders:
            ensure_weights(args, work)
        load = os.getloadavg()
        if args.compare_decoders:
            body = compare_decoders(args)
        elif args.memory_check:
            body = memory_check(args, work)
        else:
            rows = []
            for size in SIZES if args.size == "all" else (args.size,):
                rows += bench_size(args, size, work)
            body = table(rows, args.device)
        after = os.getloadavg()
    command = "python benchmarks/bench_scan.py " + " ".join(argv if argv is not None else sys.argv[1:])
    weights = (args.weights or "shipped default") if args.compare_decoders else (
        f"random {args.variant} made by the benchmark" if args.weights.parent == work else args.weights)
    report = (f"{machine()}\n\ndevice {args.device}, batch {args.batch_size}, workers "
              f"{args.workers if args.workers is not None else 'scan default'}, weights {weights}, "
              f"load average {load[0]:.2f} before / {after[0]:.2f} after\n\n`{command.strip()}`\n\n{body}\n")
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
