"""Running one benchmark child and measuring it: wall clock, peak RSS (os.wait4), peak PSS of its process tree
and GPU utilisation (sampled every 0.5 s)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

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
