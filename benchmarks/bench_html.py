"""How the HTML report copes with a large scan: 20,000 small images -> the page's size, how long it takes to
write, and how long headless chromium takes to load it, filter it, search it and sort it (issue 23).

The rows carry seeded scores and evidence, not the model's (the page costs the same whatever the scores; scoring
20,000 images on 2 CPU cores would take ten minutes and measure the scan instead). The images are real files, so
the thumbnails are made as a scan's report makes them: read again, hash-checked, decoded and shrunk.

    python benchmarks/bench_html.py                 # 20,000 images of 160x120 in data/bench-html/ (made once)
    python benchmarks/bench_html.py --n 2000 --side 640

Chromium times are whole `chromium --headless --dump-dom` runs (start, load, script, serialize), the median of
--repeat runs; "start-up" is the same on an empty page, so the page's own cost is the difference.
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))
from ipdscan.reports.html_report import render  # noqa: E402
from ipdscan.scanning.result import Result  # noqa: E402

from browser import Browser, find_chromium  # noqa: E402 - the tests' headless chromium runner


def make_images(folder: Path, n: int, side: int, seed: int) -> list[Path]:
    """``n`` small photo-like JPEGs (a smooth colour field plus noise), written once and reused."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = [folder / f"img{i:05}.jpg" for i in range(n)]
    height = side * 3 // 4
    for path in paths:
        if path.exists():
            continue
        small = rng.uniform(0, 255, (4, 5, 3)).astype(np.uint8)
        field = np.asarray(Image.fromarray(small).resize((side, height), Image.Resampling.BICUBIC), np.float32)
        pixels = np.clip(field + rng.normal(0, 6, field.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path, quality=85)
    return paths


def rows_for(paths: list[Path], seed: int, side: int) -> list[Result]:
    rng = np.random.default_rng(seed)
    rows = []
    for i, path in enumerate(paths):
        if i % 200 == 199:
            rows.append(Result.failed(str(path), "decode_error", "corrupt or truncated JPEG"))
            continue
        score = float(rng.beta(0.6, 1.4))
        declared = ["png:parameters"] if i % 97 == 0 else []
        rows.append(Result(str(path), score=score, label="ai" if score >= 0.612 else "real",
                           sha256=hashlib.sha256(path.read_bytes()).hexdigest(), format="JPEG", width=side,
                           height=side * 3 // 4, evidence=declared,
                           evidence_detail={"parameters": "a prompt"} if declared else {}))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--side", type=int, default=160, help="image width in px (height 3/4 of it)")
    parser.add_argument("--cache", type=Path, default=Path("data/bench-html"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        sys.exit("chromium is not installed (apt-get install chromium)")
    browser = Browser(chromium)
    paths = make_images(args.cache / f"{args.side}px", args.n, args.side, args.seed)
    rows = rows_for(paths, args.seed, args.side)
    header = {"tool": "ipdscan", "model": "benchmark", "threshold": 0.612, "threshold_source": "weights"}
    started = time.perf_counter()
    page = render(rows, header)
    write_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        out, empty = Path(tmp) / "report.html", Path(tmp) / "empty.html"
        out.write_text(page, encoding="utf-8")
        empty.write_text("<!DOCTYPE html><title>empty</title>", encoding="utf-8")

        def median_s(url: str) -> float:
            return statistics.median(browser.run(url, "--dump-dom", timeout=300)[1] for _ in range(args.repeat))

        base = out.resolve().as_uri()
        views = [("start-up (empty page)", empty.resolve().as_uri()), ("load, first page of cards", base),
                 ("load + filter: flagged", base + "#filter=flagged"),
                 ("load + search: 'img1234'", base + "#q=img1234"),
                 ("load + filter: declares AI, sort: name", base + "#filter=declared&sort=name"),
                 ("load + last page of all", base + f"#page={len(rows) // 100}")]
        times = [(name, median_s(url)) for name, url in views]
    thumbnails = page.count("data:image/jpeg;base64,")
    print(f"{len(rows):,} rows ({args.side}x{args.side * 3 // 4} JPEGs): page {len(page.encode()) / 2**20:.1f} MiB, "
          f"{thumbnails:,} thumbnails embedded, written in {write_s:.1f} s")
    print("| chromium --headless --dump-dom | median s | minus start-up |\n|---|---|---|")
    for name, seconds in times:
        print(f"| {name} | {seconds:.2f} | {seconds - times[0][1]:.2f} |")


if __name__ == "__main__":
    main()
