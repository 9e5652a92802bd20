"""Crash-safe resume, --shard partitions, merge, and a two-process torchrun scan."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from images import make_image


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many")
    for i in range(40):
        make_image(folder / f"img{i:02d}.png", "png")
    return folder


def names(path):
    return [Path(json.loads(line)["input"]).name for line in Path(path).read_text().splitlines()]


@pytest.mark.slow
def test_kill_9_mid_scan_then_resume_gives_every_input_once(photos, checkpoint, tmp_path, run_cli):
    out = tmp_path / "r.jsonl"
    cmd = ["-m", "ipdscan", "scan", str(photos), "--weights", str(checkpoint), "--out", str(out),
           "--batch-size", "2", "--workers", "0", "--quiet"]
    proc = run_cli.popen(*cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or len(out.read_bytes().splitlines()) < 6):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = out.read_bytes()
    complete = before[: before.rfind(b"\n") + 1].splitlines()
    assert 6 <= len(complete) < 40  # killed mid-scan, and what was flushed parses
    for line in complete:
        json.loads(line)
    resumed = run_cli.python(*cmd, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(names(out)) == [f"img{i:02d}.png" for i in range(40)]  # each exactly once
    assert names(out)[: len(complete)] == [Path(json.loads(line)["input"]).name for line in complete]


@pytest.mark.slow
def test_shards_are_disjoint_and_complete_and_merge_back(photos, checkpoint, tmp_path, cli):
    parts = []
    for k in (1, 2, 3):
        part = tmp_path / f"part{k}.jsonl"
        result = cli.invoke(["scan", str(photos), "--weights", str(checkpoint), "--out", str(part),
                             "--shard", f"{k}/3", "--workers", "0", "-q"])
        assert result.exit_code == 0, result.output
        parts.append(part)
    shard_sets = [set(names(p)) for p in parts]
    assert all(shard_sets) and sum(map(len, shard_sets)) == 40 and set.union(*shard_sets) == {f"img{i:02d}.png" for i in range(40)}
    merged = tmp_path / "all.json"
    result = cli.invoke(["merge", *map(str, parts), "--out", str(merged), "--expect", str(photos)])
    assert result.exit_code == 0, result.output
    assert len(json.loads(merged.read_text())["items"]) == 40
    # a gap: leave one shard out
    result = cli.invoke(["merge", *map(str, parts[:2]), "--out", str(tmp_path / "x.csv"), "--expect", str(photos)])
    assert result.exit_code == 2 and "have no row" in result.stderr and not (tmp_path / "x.csv").exists()
    # a duplicate: the same shard twice
    result = cli.invoke(["merge", str(parts[0]), str(parts[0]), "--out", str(tmp_path / "y.csv")])
    assert result.exit_code == 2 and "more than one row" in result.stderr
    result = cli.invoke(["merge", str(parts[0]), str(parts[0]), "--out", str(tmp_path / "y.csv"), "--allow-duplicates"])
    assert result.exit_code == 0 and len((tmp_path / "y.csv").read_text().splitlines()) == 1 + len(shard_sets[0])


@pytest.mark.slow
def test_merge_refuses_a_part_cut_short(tmp_path, photos, checkpoint, cli):
    part = tmp_path / "p.jsonl"
    assert cli.invoke(["scan", str(photos), "--weights", str(checkpoint), "--out", str(part), "-q",
                       "--workers", "0"]).exit_code == 0
    part.write_bytes(part.read_bytes()[:-10])
    result = cli.invoke(["merge", str(part), "--out", str(tmp_path / "m.csv")])
    assert result.exit_code == 2 and "cut short" in result.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_process_torchrun_scan_equals_single_process(photos, checkpoint, tmp_path, one_thread, cli, run_cli):
    # one_thread: the ranks run with OMP_NUM_THREADS=1, and bf16 sums split over 2 threads round differently
    single = tmp_path / "single.jsonl"
    assert cli.invoke(["scan", str(photos), "--weights", str(checkpoint), "--out", str(single), "-q",
                       "--workers", "0"]).exit_code == 0
    multi = tmp_path / "multi.jsonl"
    env = {**run_cli.env, "OMP_NUM_THREADS": "1"}  # torchrun's own, longer timeout: it starts two scans
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--standalone", "-m", "ipdscan", "scan", str(photos), "--weights", str(checkpoint),
                           "--out", str(multi), "--workers", "0", "-q"],
                          capture_output=True, text=True, timeout=280, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    def rows(p):
        return {json.loads(line)["input"]: json.loads(line) for line in p.read_text().splitlines()}
    one, two = rows(single), rows(multi)
    assert one.keys() == two.keys() and len(two) == 40
    assert len(multi.read_text().splitlines()) == 40  # no duplicates
    for key in one:
        assert two[key]["score"] == pytest.approx(one[key]["score"], abs=1e-5)
    assert not list(tmp_path.glob(".multi.jsonl.part*"))
