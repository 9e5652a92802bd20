"""A real headless browser for the HTML report's tests and benchmark: Debian's chromium, run once per page.

    def test_page(browser):                     # the fixture (tests/conftest.py); or Browser(find_chromium())
        dom = browser.dump_dom(path)            # the document after its scripts ran, serialized
        browser.screenshot(path, out_png)

Without chromium the ``browser`` fixture skips, except under CI=true, where it fails: .ci/run installs it.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

# No sandbox (root in a container), no GPU, and none of the browser's own background traffic (updates, sync,
# QUIC probes), so that a test server sees only what the page itself asks for. A fresh profile every run.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def find_chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


class Browser:
    def __init__(self, binary: str):
        self.binary = binary

    def run(self, page: Path | str, *args: str, timeout: float = 120) -> tuple[str, float]:
        """Load ``page`` (a file, or a URL with its #fragment) with ``args``: (stdout, seconds it took)."""
        url = page if isinstance(page, str) else Path(page).resolve().as_uri()
        with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            started = time.perf_counter()
            done = subprocess.run([self.binary, *FLAGS, f"--user-data-dir={profile}", *args, url],
                                  capture_output=True, text=True, timeout=timeout)
            elapsed = time.perf_counter() - started
        if done.returncode:
            raise RuntimeError(f"chromium exit {done.returncode}: {done.stderr[-2000:]}")
        return done.stdout, elapsed

    def dump_dom(self, page: Path | str, timeout: float = 120) -> str:
        return self.run(page, "--dump-dom", timeout=timeout)[0]

    def screenshot(self, page: Path | str, out: Path, size: tuple[int, int] = (1280, 900)) -> Path:
        self.run(page, f"--screenshot={out}", f"--window-size={size[0]},{size[1]}")
        return out
