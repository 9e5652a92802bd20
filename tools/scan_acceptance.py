"""Byte-for-byte acceptance check for refactors: the rows `ipdscan scan` writes must not change.

    python tools/scan_acceptance.py record /tmp/base13     # before: scan examples/ and a test-image corpus
    python tools/scan_acceptance.py compare /tmp/base13    # after: scan again into a temporary folder, compare

Scans examples/ (.jsonl, .csv) and a corpus of varied test images built with tests/helpers/images.py and
tests/helpers/evidence_files.py (.jsonl, .csv, .json, .sarif, and the stdout table), with the shipped weights on the CPU.
Rows must be identical byte for byte. In scan headers (the .jsonl's header file, the .json "header", the SARIF
run's properties and invocation) only the fields that record when or how fast a scan ran are ignored (start/end
times, wall_s, images_per_s), and fields the baseline lacks may be added; every other one must be unchanged.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "helpers"))
TIMING = {"start_time", "end_time", "wall_s", "images_per_s", "startTimeUtc", "endTimeUtc"}


def build_corpus(folder: Path) -> None:
    import evidence_files as ev
    from images import KINDS, make_corpus
    make_corpus(folder, KINDS)
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "a1111.png").write_bytes(ev.png_with_text(parameters=ev.A1111))
    (folder / "comfy.png").write_bytes(ev.png_with_text(prompt=ev.COMFY_PROMPT, workflow=ev.COMFY_WORKFLOW))
    (folder / "xmp.jpg").write_bytes(ev.jpeg_with_xmp(ev.xmp_packet(ev.IPTC + "trainedAlgorithmicMedia")))
    (folder / "c2pa.jpg").write_bytes(ev.jpeg_with_app11(ev.jumbf_store(ev.IPTC + "trainedAlgorithmicMedia")))
    (folder / "camera.jpg").write_bytes(ev.camera_jpeg())
    (folder / "=formula.jpg").write_bytes(ev.camera_jpeg())


def scan(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "ipdscan", "scan", *args, "--device", "cpu", "--quiet"],
                          cwd=cwd, env=env, capture_output=True)


def record(baseline: Path, out: Path) -> None:
    """Scan into ``out``, from ``baseline`` (which holds the corpus: SARIF URIs are relative to it)."""
    corpus = baseline / "corpus"
    if not corpus.exists():
        corpus.mkdir(parents=True)
        build_corpus(corpus)
    for ext in (".jsonl", ".csv"):
        scan(["examples/", "--out", str(out / f"examples{ext}")], ROOT)
    for ext in (".jsonl", ".csv", ".json", ".sarif"):
        scan(["corpus/", "--out", str(out / f"images{ext}")], baseline)
    scan(["corpus/", "--crops", "4", "--out", str(out / "images-crops.jsonl")], baseline)
    table = scan(["corpus/"], baseline)
    (out / "images.table").write_bytes(table.stdout + f"\nexit {table.returncode}\n".encode())


def headers_and_rows(path: Path) -> tuple[list[dict], object]:
    """A report file split into its scan headers (compared leniently) and everything else (compared exactly)."""
    if path.name.endswith(".header.json"):
        return [json.loads(path.read_bytes())], None
    if path.suffix == ".json":
        document = json.loads(path.read_bytes())
        return [document.pop("header")], document
    if path.suffix == ".sarif":
        document = json.loads(path.read_bytes())
        run = document["runs"][0]
        return [run.pop("properties"), run.pop("invocations")[0]], document
    return [], path.read_bytes()


def header_changes(baseline: dict, fresh: dict) -> list[str]:
    """Baseline fields, other than timings, that the fresh header lacks or holds another value for."""
    changes = []
    for key, value in baseline.items():
        if key in TIMING:
            continue
        if isinstance(value, dict) and isinstance(fresh.get(key), dict):
            changes += [f"{key}.{change}" for change in header_changes(value, fresh[key])]
        elif fresh.get(key, object()) != value:
            changes.append(key)
    return changes


def differences(baseline: Path, fresh: Path) -> list[str]:
    (old_headers, old_rows), (new_headers, new_rows) = headers_and_rows(baseline), headers_and_rows(fresh)
    found = ["rows"] if old_rows != new_rows else []
    for old, new in zip(old_headers, new_headers):
        found += [f"header field {change}" for change in header_changes(old, new)]
    return found


def compare(baseline: Path) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch)
        record(baseline, fresh)
        names = sorted(p.name for p in baseline.iterdir() if p.is_file())
        different = []
        for name in names:
            if found := differences(baseline / name, fresh / name):
                different.append(name)
                print(f"DIFFERENT: {name}: {', '.join(found)}")
        print(f"{len(names) - len(different)} of {len(names)} report files identical")
        return 1 if different else 0


if __name__ == "__main__":
    command, folder = sys.argv[1], Path(sys.argv[2]).resolve()
    sys.exit(record(folder, folder) if command == "record" else compare(folder))
