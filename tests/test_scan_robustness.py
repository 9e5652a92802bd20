"""The scan command under hostile names, CI exit-code expectations, signals and concurrent runs (issue 12)."""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from images import make_image

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd, stdin=None):
    """``python -m ipdscan`` in a real process, this tree first on the path."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-m", "ipdscan", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, input=stdin, timeout=180)


def jsonl_inputs(path):
    return [json.loads(line)["input"] for line in Path(path).read_text().splitlines()]


def test_stdin_paths_with_worker_processes(tmp_path, checkpoint):
    """The README's `find ... | ipdscan scan - --out x.json`: workers are separate processes, stdin is the parent's."""
    names = [f"{i}.png" for i in range(5)]
    for name in names:
        make_image(tmp_path / name, "png")
    proc = run_cli("scan", "-", "--weights", checkpoint, "--out", "r.json", "--workers", "1", "--batch-size", "2",
                   cwd=tmp_path, stdin="".join(f"{name}\n" for name in names))
    assert proc.returncode == 0, proc.stderr
    assert [item["input"] for item in json.loads((tmp_path / "r.json").read_text())["items"]] == names


@pytest.mark.parametrize("kind", ["pipe", "in-memory"])
def test_stdin_spool_copies_lines_as_bytes_and_ends_at_the_end_mark(kind):
    from ipdscan.stdin_spool import StdinSpool
    data = b"caf\xe9.jpg\r\n.\n+x\n\nlast-without-newline"
    if kind == "pipe":
        read_end, write_end = os.pipe()
        os.write(write_end, data)
        os.close(write_end)
        stdin = os.fdopen(read_end, "rb")
    else:
        stdin = io.BytesIO(data)
    spool = StdinSpool(stdin)
    try:
        assert list(spool.lines) == ["caf\udce9.jpg", ".", "+x", "", "last-without-newline"]
    finally:
        spool.close()
        stdin.close()
    assert not os.path.exists(spool.lines.path)
