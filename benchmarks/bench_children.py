"""What runs inside each measured child process of ``bench_scan.py``: one configuration each (the naive
references, the model alone, the stages alone, the scan job in-process), returning the rows it timed."""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def steady_scan(args) -> dict:
    """The scan job in this process (into a JSONL report, as `ipdscan scan` runs it), timed batch by batch: where
    the start-up goes, and the rate once running, which a CLI run of a few seconds cannot separate from start-up."""
    started = time.perf_counter()
    from ipdscan import ScanOptions, load_detector
    from ipdscan.scanning.job import ScanJob
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

    from ipdscan.model.preprocess import crop
    from ipdscan.model.runtime import default_workers, resolve_device
    from ipdscan.model.torch_preprocess import to_model_input
    from ipdscan.model.weights import load_checkpoint

    device = resolve_device(args.device)
    files = Path(args.files).read_text().split("\n")
    workers = default_workers(args.workers, device.type)
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

    from ipdscan.model.detector import CPU_MICRO_BATCH, Detector
    from ipdscan.model.preprocess import crop
    from ipdscan.model.runtime import has_native_bf16
    from ipdscan.model.torch_preprocess import to_model_input
    from ipdscan.model.weights import load_checkpoint
    from ipdscan.scanning.decode import decode

    files = files[:args.model_images]  # decoded up front, one by one: enough for a stable rate, not the whole set
    crops = torch.from_numpy(np.stack([crop(decode(Path(f).read_bytes()).pixels, checkpoint.preprocessing)
                                       for f in files]))
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
        for _name, score in configs:
            score(batches[0])
        for _ in range(args.repeat):  # interleaved, so a burst of other work slows one round, not one configuration
            for name, score in configs:
                sync(device)
                started = time.perf_counter()
                for _ in range(args.model_passes):
                    for batch in batches:
                        torch.as_tensor(score(batch)).float().cpu()  # Detector.score's are numpy
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
    from torch.utils.data import DataLoader

    from ipdscan.model.detector import Detector
    from ipdscan.scanning.decode import read_jpeg_header
    from ipdscan.scanning.device_decode import decode_jpegs
    from ipdscan.scanning.options import ScanOptions
    from ipdscan.scanning.plan import plan_scan
    from ipdscan.scanning.tiles import crops_of
    from ipdscan.scanning.torch_loader import ScanDataset

    rows = []
    plan = plan_scan(Detector(checkpoint, device, "fp32"), ScanOptions(batch_size=args.batch_size, workers=args.workers),
                     files)
    on_device, workers = plan.decodes_on_device, plan.workers
    started, count = time.perf_counter(), 0
    for batch in DataLoader(ScanDataset(plan), batch_size=None, num_workers=workers,
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
                torch.cat([crops_of(p, checkpoint.preprocessing)[0] for p in pixels])

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
