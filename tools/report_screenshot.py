"""The README's screenshot of the HTML report: scan examples/ with the shipped weights (--crops 4) into an .html
report, photograph it in headless chromium, and save it small (256 colours) as docs/report.png.

    python tools/report_screenshot.py            # from the repository root, ipdscan and chromium installed
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "helpers"))
from browser import Browser, find_chromium  # noqa: E402 - the tests' headless chromium runner

OUT = ROOT / "docs" / "report.png"
WINDOW = (1200, 1000)


def main() -> None:
    chromium = find_chromium()
    if chromium is None:
        sys.exit("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        report, shot = Path(tmp) / "examples.html", Path(tmp) / "shot.png"
        subprocess.run([sys.executable, "-m", "ipdscan", "scan", "examples", "--crops", "4", "--device", "cpu",
                        "--quiet", "--out", str(report)], cwd=ROOT, check=True)
        Browser(chromium).screenshot(report, shot, WINDOW)
        image = Image.open(shot).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
        image.save(OUT, optimize=True)
    print(f"{OUT.relative_to(ROOT)}: {OUT.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
