"""The HTML report at scale (issue 33: 15): page size, peak memory and time to write it for N synthetic rows.

Before the cap, 200,000 rows made a 135 MB page and took 1.47 GB. Each size runs in a fresh process, so the peak
(ru_maxrss) is that of one report; "rows" is the peak after the rows are made, before the page is rendered, so
the page's own cost is the difference. Rows are synthetic (seeded scores, one in 200 an error, one in 97 declaring
AI) and name files that do not exist: no thumbnails are made (bench_html.py measures those, with real files).

    python benchmarks/bench_html_scale.py                      # 20,000 and 200,000 rows
    python benchmarks/bench_html_scale.py --n 200000 --n 1000000
    PYTHONPATH=/path/to/old/checkout python benchmarks/bench_html_scale.py   # the same for another version
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time
import numpy as np
from ipdscan.reports import html_report
from ipdscan.scanning.result import Result
n = int(sys.argv[1])
rng = np.random.default_rng(0)
scores = rng.beta(0.6, 1.4, n)
rows = []
for i in range(n):
    name = f"assets/batch{i // 1000:04}/img{i:07}.jpg"
    if i % 200 == 199:
        rows.append(Result.failed(name, "decode_error", "corrupt or truncated JPEG"))
        continue
    declared = ["png:parameters"] if i % 97 == 0 else []
    rows.append(Result(name, score=float(scores[i]), label="ai" if scores[i] >= 0.612 else "real",
                       sha256=f"{i:064x}", format="JPEG", width=640, height=480, bytes=123_456, evidence=declared,
                       evidence_detail={"parameters": "a prompt, Steps: 20"} if declared else {}))
rows_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started = time.perf_counter()
page = html_report.render(rows, {"tool": "ipdscan", "model": "benchmark", "threshold": 0.612})
seconds = time.perf_counter() - started
print(json.dumps({"rows": n, "page_mib": len(page.encode()) / 2**20, "cards": page.count('<li class="card'),
                  "rows_mb": rows_mb, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": seconds}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append", help="rows (repeatable; default 20,000 and 200,000)")
    args = parser.parse_args()
    print("| rows | page MiB | cards in the page | peak RSS MB (rows alone) | render s |\n|---|---|---|---|---|")
    for n in args.n or [20_000, 200_000]:
        # run outside the checkout: "-c" puts the current directory first on sys.path, before PYTHONPATH
        out = subprocess.run([sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True, check=True,
                             cwd=tempfile.gettempdir())
        r = json.loads(out.stdout.splitlines()[-1])
        print(f"| {r['rows']:,} | {r['page_mib']:.1f} | {r['cards']:,} | {r['peak_mb']:,.0f} ({r['rows_mb']:,.0f}) "
              f"| {r['seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
