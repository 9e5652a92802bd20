"""What a huge ignore file costs a scan (issue 33): the time to read and compile it, and the time per finding it
is checked against, for a folder's .ipdscanignore of --rules rules (half literal paths, a quarter name globs, a
quarter path globs, the way a generated allow-list looks), on --findings findings none of which it covers (the
worst case: every rule is tried).

    python benchmarks/bench_ignore.py                       # 200,000 rules, 200 findings (~10 s on 2 cores)
    python benchmarks/bench_ignore.py --rules 20000 --findings 1000
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from ipdscan.reports.suppress import Suppressions
from ipdscan.scanning.result import Result


def write_rules(path: Path, count: int) -> None:
    lines = []
    for number in range(count):
        kind = number % 4
        lines.append(f"renders/r{number}.png" if kind < 2 else
                     f"shot{number}-*.jpg  # reviewed" if kind == 2 else f"gen/{number}/*.webp")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=200_000)
    parser.add_argument("--findings", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_rules(root / ".ipdscanignore", args.rules)
        os.chdir(root)
        started = time.perf_counter()
        suppressions = Suppressions(["."])
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        for number in range(args.findings):
            finding = Result(input=f"assets/new{number}.jpg", status="ok", score=0.97, label="ai", sha256="ab" * 32)
            suppressions.apply(finding)
            assert not finding.suppressed
        per_finding = (time.perf_counter() - started) / args.findings
    print(f"{args.rules:,} rules: read and compiled in {loaded:.2f} s; {per_finding * 1000:.2f} ms per finding "
          f"({args.findings} findings, none covered)")


if __name__ == "__main__":
    main()
