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
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

# Siblings, found because the script's folder is first on sys.path: python benchmarks/bench_scan.py
from bench_children import child_main
from bench_images import SIZES, build_corpus, corpus_files, link_copies, link_farm
from bench_measure import ROOT, run_measured


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

    from ipdscan.model.runtime import cpu_has_native_bf16
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

    from ipdscan.model.ipdnet import IPDConfig, IPDNet
    from ipdscan.model.preprocess import Preprocessing
    from ipdscan.model.weights import save_checkpoint
    torch.manual_seed(args.seed)
    args.weights = work / f"random-{args.variant}.pt"
    save_checkpoint(args.weights, IPDNet(IPDConfig(variant=args.variant)), Preprocessing(),
                    name=f"bench-random-{args.variant}", provenance={"purpose": "benchmark", "seed": args.seed})


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
