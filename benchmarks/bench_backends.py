"""ONNX Runtime against torch on the CPU: the same images, one run, side by side (issue 32).

    python benchmarks/bench_backends.py                                  # the 640x480 bench set (bench_images.py)
    python benchmarks/bench_backends.py ../shared/data/dev-eval --repeat 3 --out table.md

Rows, on the scan's own centre crops of every image (``decode.decode`` + ``preprocess.crop``):
  (a) onnxruntime, model only   ``OnnxDetector.score`` on crops decoded beforehand, --batch-size crops per call
  (b) scan --backend onnxruntime, steady
                                ``python -m ipdscan scan`` over --copies links to every image, less a 1-image scan:
                                (N - 1) / (T(N) - T(1)), so whatever the scan path is, it is what is measured
  (c) naive PIL + torch fp32    PIL open + RGB + the paper's centre crop, batches of 32, fp32 eager ``IPDNet(x)``
  torch backend, model only     ``score.Detector`` fp32 on the (a) crops: the reference for the score difference
and (b)/(a), (b)/(c), and the largest |score difference| between the scan's rows (onnxruntime) and the torch
backend over the images. Every timing is the fastest of --repeat rounds, run round-robin; the load average
before and after is printed (on a shared machine, numbers under load say so).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Siblings, found because the script's folder is first on sys.path: python benchmarks/bench_backends.py
from bench_images import build_corpus
from bench_measure import ROOT
from bench_scan import machine

TARGET_OF_MODEL, TARGET_OF_NAIVE = 0.8, 3.0  # issue 32: (b) >= 80% of (a) and >= 3x (c)


def image_files(folder: Path) -> list[Path]:
    from ipdscan.scanning.sources import IMAGE_EXTENSIONS
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def linked_copies(files: list[Path], copies: int, farm: Path) -> Path:
    """One flat folder holding ``copies`` links to every file (copies where the file system refuses links)."""
    farm.mkdir()
    for copy in range(copies):
        for index, source in enumerate(files):
            link = farm / f"{copy:03d}-{index:05d}{source.suffix.lower()}"
            try:
                os.link(source, link)
            except OSError:
                shutil.copy(source, link)
    return farm


def fastest(seconds: dict, name: str, value: float) -> None:
    seconds[name] = min(seconds.get(name, float("inf")), value)


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def scan_seconds(args, target: Path, out: Path) -> float:
    """Wall clock of one ``ipdscan scan --backend onnxruntime`` process; exits the benchmark if it fails."""
    command = [sys.executable, "-m", "ipdscan", "scan", str(target), "--backend", "onnxruntime", "--device", "cpu",
               "--weights", str(args.weights), "--batch-size", str(args.batch_size), "--out", str(out), "--quiet"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: something flagged
        sys.exit(f"benchmark scan failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
    return seconds


def report_scores(report: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    return {row["input"]: row["score"] for row in rows if row.get("status") == "ok"}


def naive_torch(files: list[Path], model, preprocessing, batch_size: int = 32) -> np.ndarray:
    """(c): the loop a script would write: PIL, the paper's centre crop, fp32 eager ``model(x)`` in batches."""
    import torch
    from PIL import Image

    from ipdscan.model.preprocess import crop
    from ipdscan.model.torch_preprocess import to_model_input
    scores = []
    with torch.no_grad():
        for start in range(0, len(files), batch_size):
            crops = [crop(np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1), preprocessing)
                     for path in files[start:start + batch_size]]
            x = to_model_input(torch.from_numpy(np.stack(crops)), preprocessing)
            scores.append(torch.sigmoid(model(x)).numpy())
    return np.concatenate(scores)


def bench(args, work: Path) -> str:
    from ipdscan.model.backends import onnx_beside
    from ipdscan.model.detector import load_detector
    from ipdscan.model.onnx_backend import load_onnx_detector
    from ipdscan.model.preprocess import crop
    from ipdscan.scanning.decode import decode

    files = image_files(args.images)
    onnx = load_onnx_detector(onnx_beside(args.weights))
    torch_backend = load_detector(args.weights, "cpu", "fp32")
    crops = np.stack([crop(decode(path.read_bytes()).pixels, onnx.preprocessing) for path in files])
    batches = [crops[start:start + args.batch_size] for start in range(0, len(crops), args.batch_size)]
    one = work / "one"
    one.mkdir()
    shutil.copy(files[0], one / f"00000{files[0].suffix.lower()}")
    farm = linked_copies(files, args.copies, work / "farm")
    seconds: dict[str, float] = {}
    for _ in range(args.repeat):
        fastest(seconds, "a", timed(lambda: [onnx.score(batch) for batch in batches]))
        fastest(seconds, "torch", timed(lambda: [torch_backend.score(batch) for batch in batches]))
        fastest(seconds, "scan 1", scan_seconds(args, one, work / "one.jsonl"))
        fastest(seconds, "scan N", scan_seconds(args, farm, work / "farm.jsonl"))
        fastest(seconds, "c", timed(lambda: naive_torch(files, torch_backend.checkpoint.model, onnx.preprocessing)))

    scanned = report_scores(work / "farm.jsonl")
    scan_n = len(files) * args.copies
    if len(scanned) != scan_n:
        sys.exit(f"the scan scored {len(scanned)} of {scan_n} images: see {work / 'farm.jsonl'}")
    by_file = {f"{copy:03d}-{index:05d}{path.suffix.lower()}": index
               for copy in range(args.copies) for index, path in enumerate(files)}
    reference = torch_backend.score(crops)
    difference = max(abs(score - reference[by_file[Path(name).name]]) for name, score in scanned.items())
    model_rate, naive_rate = len(crops) / seconds["a"], len(files) / seconds["c"]
    steady_rate = (scan_n - 1) / (seconds["scan N"] - seconds["scan 1"])
    rows = [("(a) onnxruntime, model only (crops decoded beforehand)", len(crops), seconds["a"]),
            ("(b) scan --backend onnxruntime, steady (start-up taken out)", scan_n - 1, seconds["scan N"] - seconds["scan 1"]),
            ("(c) naive PIL + torch fp32 eager, batch 32", len(files), seconds["c"]),
            ("torch backend fp32, model only (Detector.score)", len(crops), seconds["torch"])]
    lines = ["| configuration | images | seconds | images/s |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {count} | {time_taken:.1f} | {count / time_taken:.1f} |" for name, count, time_taken in rows]
    lines += ["", f"- scan 1 image (start-up): {seconds['scan 1']:.1f} s; scan of {scan_n} images: {seconds['scan N']:.1f} s",
              f"- (b)/(a) = {steady_rate / model_rate:.0%} (target >= {TARGET_OF_MODEL:.0%}): "
              f"{'PASS' if steady_rate >= TARGET_OF_MODEL * model_rate else 'FAIL'}",
              f"- (b)/(c) = {steady_rate / naive_rate:.2f}x (target >= {TARGET_OF_NAIVE:g}x): "
              f"{'PASS' if steady_rate >= TARGET_OF_NAIVE * naive_rate else 'FAIL'}",
              f"- onnxruntime vs torch: ONNX Runtime model only {model_rate / (len(crops) / seconds['torch']):.2f}x the "
              f"torch backend's fp32 rate",
              f"- max |score difference|, the scan's rows (onnxruntime) vs the torch backend (fp32), over "
              f"{len(files)} images: {difference:.2e}"]
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", type=Path, nargs="?", default=None,
                   help="a folder of images, searched at any depth (default: the bench set of --n 640x480 JPEGs)")
    p.add_argument("--n", type=int, default=192, help="images in the default bench set")
    p.add_argument("--weights", type=Path, default=None,
                   help="checkpoint with its .onnx beside it (default: the shipped weights)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--copies", type=int, default=2, help="links to every image in the timed scan (b)")
    p.add_argument("--repeat", type=int, default=1, help="rounds; each row keeps its fastest")
    p.add_argument("--cache", type=Path, default=ROOT / "data" / "bench", help="where the bench set is kept")
    p.add_argument("--out", type=Path, default=None, help="also write the markdown report here")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.weights is None:
        from ipdscan.model.weights import default_weights_path
        args.weights = default_weights_path()
    args.images = args.images or build_corpus(args.cache, "640x480", args.n, seed=0)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ipdscan-bench-backends-") as tmp:
        body = bench(args, Path(tmp))
    after = os.getloadavg()
    command = "python benchmarks/bench_backends.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = (f"{machine()}\n\nimages {args.images}, weights {args.weights}, batch {args.batch_size}, load average "
              f"{load[0]:.2f} before / {after[0]:.2f} after\n\n`{command.strip()}`\n\n{body}\n")
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
