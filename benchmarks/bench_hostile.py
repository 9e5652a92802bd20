"""Memory and time that hostile inputs cost a scan (issue 21's rough edges): each case runs in a fresh child, measured
by bench_measure (peak RSS of its largest process, peak PSS of its process tree), beside a baseline child that does
the same with a harmless input, so the difference is what the hostile input costs.

    python benchmarks/bench_hostile.py                          # every case, sizes as in RESULTS.md (~3 min, 2 cores)
    python benchmarks/bench_hostile.py --case tiff --tiff-mp 49 # one case

Cases:
    tiff    decode a float32 gray TIFF of --tiff-mp megapixels (vs a 1 MP one): bound ~350 MB (decode.MAX_PIXELS)
    gif     scan a GIF of --gif-frames frames (vs 1 frame), one worker process
    empty   scan a folder of --empty-files empty .jpg files (vs 1), one worker process: one error row each
    stdin   scan - with --stdin-mb MB on stdin and no newline (vs an empty stdin): time and memory stay linear
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_measure import Measured, run_measured  # noqa: E402

DECODE = "import sys; from ipdscan.scanning.decode import decode; decode(open(sys.argv[1], 'rb').read())"


def scan(target: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ipdscan", "scan", target, "--device", "cpu", "--workers", "1", "--quiet",
            "--out", str(out), *extra]


def float_tiff(path: Path, megapixels: float) -> Path:
    side = int((megapixels * 1e6) ** 0.5)
    Image.fromarray(np.random.default_rng(0).random((side, side), dtype=np.float32)).save(path, "TIFF")
    return path


def gif(path: Path, frames: int, side: int = 512) -> Path:
    """Flat frames with a noisy corner each, so the file stays under --max-mb (LZW packs the flat part)."""
    rng = np.random.default_rng(0)
    images = []
    for number in range(frames):
        pixels = np.full((side, side), number % 256, np.uint8)
        pixels[:32, :32] = rng.integers(0, 255, (32, 32), dtype=np.uint8)
        images.append(Image.fromarray(pixels, "L").convert("P"))
    images[0].save(path, "GIF", save_all=True, append_images=images[1:], duration=40)
    return path


def empty_folder(path: Path, count: int) -> Path:
    path.mkdir()
    for number in range(count):
        (path / f"{number:06d}.jpg").touch()
    return path


def stdin_child(megabytes: int, command: list[str]) -> list[str]:
    """``command`` with ``megabytes`` of "x" and no newline piped to its stdin, from a small feeder process."""
    feeder = ("import subprocess, sys; p = subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE); "
              "block = b'x' * (1 << 20)\n[p.stdin.write(block) for _ in range(int(sys.argv[1]))]\n"
              "p.stdin.close(); sys.exit(p.wait())")
    return [sys.executable, "-c", feeder, str(megabytes), *command]


def row(name: str, hostile: Measured, baseline: Measured) -> str:
    pss = f"{hostile.pss_mb:,.0f} | {hostile.pss_mb - baseline.pss_mb:+,.0f}" if hostile.pss_mb and baseline.pss_mb \
        else "– | –"
    return (f"| {name} | {hostile.seconds:.1f} | {hostile.rss_mb:,.0f} | {hostile.rss_mb - baseline.rss_mb:+,.0f} "
            f"| {pss} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=("tiff", "gif", "empty", "stdin"), action="append")
    parser.add_argument("--tiff-mp", type=float, default=49)
    parser.add_argument("--gif-frames", type=int, default=1000)
    parser.add_argument("--empty-files", type=int, default=50_000)
    parser.add_argument("--stdin-mb", type=int, default=80)
    args = parser.parse_args()
    cases = args.case or ["tiff", "gif", "empty", "stdin"]
    lines = ["| case | seconds | peak RSS MB (largest process) | vs baseline | peak PSS MB (all processes) "
             "| vs baseline |", "|---|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)

        def measure(command: list[str]) -> Measured:
            return run_measured(command, "cpu", tmp / "child.log")

        if "tiff" in cases:
            big, small = float_tiff(tmp / "big.tif", args.tiff_mp), float_tiff(tmp / "small.tif", 1)
            lines.append(row(f"decode a {args.tiff_mp:g} MP float32 TIFF (vs 1 MP)",
                             measure([sys.executable, "-c", DECODE, str(big)]),
                             measure([sys.executable, "-c", DECODE, str(small)])))
        if "gif" in cases:
            many, one = gif(tmp / "many.gif", args.gif_frames), gif(tmp / "one.gif", 1)
            lines.append(row(f"scan a {args.gif_frames}-frame 512x512 GIF (vs 1 frame)",
                             measure(scan(str(many), tmp / "r.jsonl")), measure(scan(str(one), tmp / "r.jsonl"))))
        if "empty" in cases:
            many, one = empty_folder(tmp / "empty", args.empty_files), empty_folder(tmp / "one", 1)
            lines.append(row(f"scan {args.empty_files:,} empty files (vs 1)",
                             measure(scan(str(many), tmp / "r.jsonl")), measure(scan(str(one), tmp / "r.jsonl"))))
        if "stdin" in cases:
            lines.append(row(f"scan -, {args.stdin_mb} MB on stdin without a newline (vs nothing)",
                             measure(stdin_child(args.stdin_mb, scan("-", tmp / "r.jsonl"))),
                             measure(stdin_child(0, scan("-", tmp / "r.jsonl")))))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
