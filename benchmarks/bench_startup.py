"""How long `ipdscan` takes to answer without scanning: --help, scan --help, config, an argument error, and
--version (which imports torch, by design). Each is a fresh process, run --repeat times; the median wall time and
the peak RSS (ru_maxrss of the child) are reported. Issue 24's target: under 0.5 s on a 2-core machine for all but
--version.

    python benchmarks/bench_startup.py              # from the repository root
    python benchmarks/bench_startup.py --repeat 9
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {"--help": ["--help"], "scan --help": ["scan", "--help"], "config": ["config"],
            "argument error": ["scan", "--batch-size", "0", "x.png"], "--version": ["--version"]}


def measure(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one `python -m ipdscan ARGS` process."""
    start = time.perf_counter()
    pid = subprocess.Popen([sys.executable, "-m", "ipdscan", *args], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL).pid
    _, _, usage = os.wait4(pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    measure(["--help"])  # warm the file cache: the first process reads every .pyc from disk
    print(f"| command | median wall s (of {args.repeat}) | peak RSS MB |\n|---|---|---|")
    for command in COMMANDS.values():
        runs = [measure(command) for _ in range(args.repeat)]
        print(f"| `ipdscan {' '.join(command)}` | {statistics.median(t for t, _ in runs):.2f} | "
              f"{max(m for _, m in runs):.0f} |")
    print(f"\nload average before: {os.getloadavg()[0]:.2f}; cores: {os.cpu_count()}", file=sys.stderr)


if __name__ == "__main__":
    main()
