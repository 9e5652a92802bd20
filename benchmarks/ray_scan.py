"""`ipdscan scan --ray` against a plain scan of the same images: what a local Ray instance costs (start-up and per
image), whether the rows are the same, and the driver's memory as the inputs grow.

    python benchmarks/ray_scan.py                          # CPU: 16 and 64 640x480 JPEGs, plain and --ray, ~3-5 min on 2 cores
    python benchmarks/ray_scan.py --n 32,256 --memory 5000,100000
    python benchmarks/ray_scan.py --gpu-n 512,4096         # with CUDA: also one GPU actor fed by CPU tasks vs a plain GPU scan

Every scan is a fresh `python -m ipdscan scan ... --quiet` process (the shipped weights, --device cpu unless the
GPU part): wall seconds and peak RSS (os.wait4: the scan process; with --ray that is the driver alone, as Ray's
own processes are not its children). From two corpus sizes N1 < N2: per image = (T2 - T1) / (N2 - N1), fixed
start-up = T1 - N1 x per image. The memory part scans URL lists of failing URLs (127.0.0.1:9, refused before any
connection, so every input is an error row at once) and reports the driver's peak RSS at each size: flat means
the driver holds a bounded chunk of inputs (ray_scan.CHUNK), not the list.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench_images import build_corpus
from bench_measure import ROOT


def run(args: list[str], env=None) -> tuple[float, float, int]:
    """(wall s, peak RSS MB, exit code) of one `python -m ipdscan scan ARGS --quiet`."""
    start = time.perf_counter()
    pid = os.spawnve(os.P_NOWAIT, sys.executable, [sys.executable, "-m", "ipdscan", "scan", *args, "--quiet"],
                     {**os.environ, **(env or {})})
    _, status, usage = os.wait4(pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def same_rows(a: Path, b: Path) -> str:
    return "identical" if a.read_bytes() == b.read_bytes() else "DIFFER"


def overhead(args, sizes: list[int], device: str, extra: list[str], work: Path) -> list[str]:
    lines = [f"| {device} | scan | N | wall s | images/s | peak RSS MB (driver) |", "|---|---|---:|---:|---:|---:|"]
    times = {}
    for n in sizes:
        folder = build_corpus(args.cache, "640x480", n, args.seed)
        for name, flags in (("plain", []), ("--ray", ["--ray"])):
            out = work / f"{device}-{name.strip('-')}-{n}.jsonl"
            seconds, rss, code = run([str(folder), "--device", device, "--out", str(out), *extra, *flags])
            assert code == 0, f"{name} scan of {n} exited {code}"
            times[name, n] = seconds
            lines.append(f"| {device} | {name} | {n} | {seconds:.1f} | {n / seconds:.1f} | {rss:.0f} |")
        lines[-1] += f" rows vs plain: {same_rows(work / f'{device}-plain-{n}.jsonl', work / f'{device}-ray-{n}.jsonl')}"
    small, large = sizes
    lines.append("")
    for name in ("plain", "--ray"):
        per_image = (times[name, large] - times[name, small]) / (large - small)
        fixed = times[name, small] - small * per_image
        lines.append(f"- {device} {name}: {per_image * 1000:.1f} ms per image ({1 / per_image:.1f} img/s once "
                     f"running), {fixed:.1f} s fixed (start-up)")
    return lines


def memory(args, sizes: list[int], work: Path) -> list[str]:
    lines = ["| inputs (failing URLs) | scan | wall s | peak RSS MB (driver) |", "|---:|---|---:|---:|"]
    for n in sizes:
        urls = work / f"urls-{n}.txt"
        urls.write_text("".join(f"http://127.0.0.1:9/{i}.jpg\n" for i in range(n)))
        for name, flags in (("plain", []), ("--ray", ["--ray"])):
            out = work / f"mem-{name.strip('-')}-{n}.jsonl"
            seconds, rss, code = run([str(urls), "--device", "cpu", "--batch-size", "256", "--out", str(out),
                                      *flags])
            assert code == 0, f"{name} scan of {n} URLs exited {code}"
            lines.append(f"| {n} | {name} | {seconds:.1f} | {rss:.0f} |")
            out.unlink()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="16,64", help="two CPU corpus sizes, N1,N2 ('' skips)")
    parser.add_argument("--gpu-n", default="512,4096", help="two GPU corpus sizes (only with CUDA)")
    parser.add_argument("--memory", default="5000,100000", help="URL-list sizes for the driver's memory ('' skips)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ipdscan-bench")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.chdir(ROOT)
    import torch
    print(f"load average before: {os.getloadavg()[0]:.2f}; CPUs: {len(os.sched_getaffinity(0))}; "
          f"torch {torch.__version__}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="ipdscan-ray-bench-") as folder:
        work = Path(folder)
        lines = overhead(args, [int(n) for n in args.n.split(",")], "cpu", ["--batch-size", "32"], work) \
            if args.n else []
        if torch.cuda.is_available() and args.gpu_n:
            lines += [""] + overhead(args, [int(n) for n in args.gpu_n.split(",")], "cuda",
                                     ["--batch-size", "128", "--decode", "workers"], work)
        else:
            lines += ["", "(no CUDA here: the GPU part did not run)"]
        if args.memory:
            lines += [""] + memory(args, [int(n) for n in args.memory.split(",")], work)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
