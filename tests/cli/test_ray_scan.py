"""`ipdscan scan --ray`: the same rows as a local scan, a killed worker retried without a lost or doubled row,
--resume after an interrupted Ray scan, and a one-line error without Ray.

The Ray tests share one local Ray instance (2 CPUs, no dashboard), started once for the module: a scan joins the
instance its process already has. The test-only fault hook (ray_workers.FAULTS_ENV) reaches the Ray workers through
the instance's runtime environment.
"""
import json
import shutil
import signal
import sys
from pathlib import Path

import pytest

from ipdscan.interrupt import signal_handlers_kept
from ipdscan.model.detector import load_detector
from ipdscan.scanning import ray_scan, ray_workers
from ipdscan.scanning.job import ScanJob
from ipdscan.scanning.options import ScanOptions

from images import KINDS, make_corpus

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def ray_or_skip():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        pytest.skip("ray[data] is not installed (pip install 'ipdscan[ray]'; .ci/run installs it with the test extra)")
    return ray


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def local_ray(faults):
    ray = ray_or_skip()
    assert not ray.is_initialized()
    with signal_handlers_kept():  # ray.init's own SIGTERM handler must not outlive these tests
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR",
                 runtime_env={"env_vars": {ray_workers.FAULTS_ENV: str(faults)}})
        yield ray
        ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """examples/ and every kind of test image (the hostile ones too) in one folder, and a missing file."""
    folder = tmp_path_factory.mktemp("corpus")
    for image in EXAMPLES.glob("*.jpg"):
        shutil.copy(image, folder / image.name)
    make_corpus(folder, KINDS)
    return folder


def scan_to(cli, args, out, *extra):
    """``ipdscan scan ARGS --out OUT`` on the CPU, quietly, in this process (so it joins the module's instance)."""
    return cli.invoke(["scan", *map(str, args), "--out", str(out), "--device", "cpu", "-q", *extra])


def rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.mark.slow
def test_a_ray_scan_writes_the_rows_of_a_local_scan(local_ray, corpus, checkpoint, tmp_path, monkeypatch, cli):
    monkeypatch.setattr(ray_scan, "CHUNK", 24)  # three datasets of three batches: chunks join up in order
    args = [corpus, corpus / "missing.png", "--weights", checkpoint, "--batch-size", "8"]
    local = scan_to(cli, args, tmp_path / "local.jsonl")
    assert local.exit_code == 2 and "no such file" in local.stderr  # the missing path, as a local scan says
    on_ray = scan_to(cli, args, tmp_path / "ray.jsonl", "--ray")
    assert on_ray.exit_code == 2 and on_ray.stderr == local.stderr, on_ray.output
    expected = rows(tmp_path / "local.jsonl")
    assert len(expected) == len(KINDS) + 9 and {row["status"] for row in expected} == {"ok", "error"}
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    header = json.loads((tmp_path / "ray.jsonl.header.json").read_text())
    local_header = json.loads((tmp_path / "local.jsonl.header.json").read_text())
    timing = {"start_time", "end_time", "wall_s", "images_per_s"}
    # The settings that differ: the executor and the report's own name.
    assert header["settings"].pop("ray") == {"value": True, "source": "command line"}
    assert header["settings"].pop("out")["value"].endswith("ray.jsonl")
    assert local_header["settings"].pop("out")["value"].endswith("local.jsonl")
    assert {k: v for k, v in header.items() if k not in timing} == \
        {k: v for k, v in local_header.items() if k not in timing}


@pytest.mark.slow
def test_a_killed_task_and_a_killed_actor_are_retried_with_every_row_once(local_ray, faults, checkpoint, tmp_path, cli):
    local = scan_to(cli, [EXAMPLES, "--weights", checkpoint, "--batch-size", "2"], tmp_path / "local.jsonl")
    assert local.exit_code == 0, local.output
    kills = [faults / "prepare-2", faults / "score-4"]  # the batches starting at inputs 2 and 4
    for kill in kills:
        kill.touch()
    on_ray = scan_to(cli, [EXAMPLES, "--weights", checkpoint, "--batch-size", "2"], tmp_path / "ray.jsonl", "--ray")
    assert on_ray.exit_code == 0, on_ray.output
    assert not any(kill.exists() for kill in kills)  # both processes did exit
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()


@pytest.mark.slow
def test_resume_after_an_interrupted_ray_scan_gives_every_input_once(local_ray, corpus, checkpoint, tmp_path, cli):
    out = tmp_path / "r.jsonl"
    local = scan_to(cli, [corpus, "--weights", checkpoint, "--batch-size", "8"], tmp_path / "local.jsonl")
    assert local.exit_code == 0, local.output
    seen = []

    def interrupt(result):
        seen.append(result)
        if len(seen) == 12:
            raise KeyboardInterrupt("interrupted")

    job = ScanJob([str(corpus)], ScanOptions(batch_size=8), out=out, ray=ray_scan.RayOptions())
    with job:
        job.start(load_detector(checkpoint, "cpu"))
        outcome = job.run(on_result=interrupt)
    assert outcome.stopped_by == "interrupted" and 8 < len(rows(out)) < len(KINDS) + 8  # the 12th was not written
    resumed = scan_to(cli, [corpus, "--weights", checkpoint, "--batch-size", "8"], out, "--ray", "--resume")
    assert resumed.exit_code == 0, resumed.output
    resumed_rows, local_rows = (sorted(rows(path), key=lambda row: row["input"]) for path in (out, tmp_path / "local.jsonl"))
    assert [row["input"] for row in resumed_rows] == [row["input"] for row in local_rows]  # each once
    for row, expected in zip(resumed_rows, local_rows):
        # the resumed rows were scored in other batches: on the CPU, in other pairs (score.CPU_MICRO_BATCH)
        assert row["score"] == pytest.approx(expected["score"], abs=1e-5)
        assert {**row, "score": None} == {**expected, "score": None}


def test_without_ray_the_scan_is_one_line_and_exit_2(monkeypatch, tmp_path, cli):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when it is not installed
    result = cli.invoke(["scan", str(EXAMPLES), "--ray", "--out", str(tmp_path / "r.jsonl")])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: " + ray_scan.RAY_MISSING
    assert not (tmp_path / "r.jsonl").exists()


def test_ray_options_go_with_ray(tmp_path, cli):
    result = cli.invoke(["scan", str(EXAMPLES), "--ray-address", "auto"])
    assert result.exit_code == 2 and "go with --ray" in result.stderr
    # from the environment (or a config file) they wait for a --ray: a plain scan runs
    result = cli.invoke(["scan", str(tmp_path / "missing.png")], env={"IPDSCAN_RAY_ACTORS": "2"})
    assert result.exit_code == 2 and "no such file" in result.stderr


def test_joining_ray_keeps_the_scans_signal_handlers():
    """ray.init replaces SIGTERM's handler with its own sys.exit: connect puts the scan's back, so a SIGTERM
    mid-scan still closes the report as Ctrl-C does."""
    class FakeRay:
        def is_initialized(self):
            return False

        def init(self, **kwargs):
            signal.signal(signal.SIGTERM, lambda signum, frame: None)
            signal.signal(signal.SIGINT, lambda signum, frame: None)

    def scans_handler(signum, frame):
        raise KeyboardInterrupt
    previous = {signum: signal.signal(signum, scans_handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert ray_scan.connect(FakeRay(), ray_scan.RayOptions(cpus=1)) is True
        assert signal.getsignal(signal.SIGTERM) is scans_handler and signal.getsignal(signal.SIGINT) is scans_handler
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
