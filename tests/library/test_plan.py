"""The scan's plan (``plan.ScanPlan``): worked out once, from the detector and the options, and what the report
header, the executors and Ray read."""
from dataclasses import replace

import pytest

from ipdscan.scanning.job import ScanJob
from ipdscan.scanning.options import ScanOptions
from ipdscan.scanning.pipeline import run_plan
from ipdscan.scanning.plan import plan_scan


def test_a_library_callers_threshold_is_recorded_as_its_own(tmp_path, detector, photo):
    """The threshold's source was defaulted apart from the threshold: ScanOptions(threshold=0.9) from Python
    wrote a header saying the threshold came from the weights."""
    photo("a.png")
    with ScanJob([str(tmp_path)], ScanOptions(workers=0, threshold=0.9), out=tmp_path / "r.jsonl") as job:
        header = job.start(detector)
    assert (header.threshold, header.threshold_source) == (0.9, "--threshold")
    with ScanJob([str(tmp_path)], ScanOptions(workers=0), out=tmp_path / "s.jsonl") as job:
        header = job.start(detector)
    assert (header.threshold, header.threshold_source) == (detector.threshold, "weights")


def test_the_plan_holds_what_the_scan_comes_to_here(detector):
    plan = plan_scan(detector, ScanOptions(workers=0, crops=3), ["a", "b"])
    assert (plan.backend, plan.device, plan.precision, plan.decodes_on_device) == ("torch", "cpu", "fp32", False)
    assert (plan.inputs, plan.workers, plan.model, plan.weights_sha256) == (("a", "b"), 0, detector.name, detector.sha256)
    assert plan_scan(detector, ScanOptions(decode="device"), []).decodes_on_device  # torchvision's CPU decoder
    skipping = plan_scan(detector, ScanOptions(skip={"a"}.__contains__), ["a"])
    assert skipping.options.skip and skipping.for_workers().options.skip is None  # picklable for the workers


@pytest.mark.slow
def test_the_worker_pool_and_the_dataloader_write_the_same_rows(tmp_path, detector, photo):
    """The two local executors run the same prepare_batch and score_batch: the same rows in the same order,
    whatever the batches and workers (the pool's spawned workers included), failures as rows."""
    for index in range(5):
        photo(f"{index}.png", seed=index)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    inputs = [str(tmp_path), str(tmp_path / "missing.png")]
    plan = plan_scan(detector, ScanOptions(workers=0, batch_size=2, crops=2), inputs)
    loader_rows = [row.to_dict() for batch in run_plan(plan, detector) for row in batch]
    pool = replace(plan, backend="onnxruntime", workers=2)  # the torch-free executor, scored by the same detector
    pool_rows = [row.to_dict() for batch in run_plan(pool, detector) for row in batch]
    assert pool_rows == loader_rows and len(loader_rows) == 7
    assert [row["status"] for row in loader_rows].count("error") == 2


def test_device_decoding_is_the_torch_backends(detector, monkeypatch):
    monkeypatch.setattr(type(detector), "backend", "onnxruntime")
    with pytest.raises(ValueError, match="--decode device needs the torch backend"):
        plan_scan(detector, ScanOptions(decode="device"), [])
    assert plan_scan(detector, ScanOptions(), []).backend == "onnxruntime"


def test_a_scan_of_one_batch_starts_no_worker_process(tmp_path, detector, photo, monkeypatch):
    """A single file (a pre-commit hook's scan) is prepared in the scanning process: a spawned worker would cost
    more start-up than it overlaps. A second batch is what starts the pool."""
    import ipdscan.scanning.worker_pool as worker_pool
    started = []

    def no_pool(*args, **kwargs):
        started.append(args)
        raise RuntimeError("a worker pool was started")
    monkeypatch.setattr(worker_pool, "ProcessPoolExecutor", no_pool)
    photo("one.png")
    plan = replace(plan_scan(detector, ScanOptions(workers=2, batch_size=2), [str(tmp_path)]), backend="onnxruntime")
    assert [row.status for batch in run_plan(plan, detector) for row in batch] == ["ok"] and started == []
    photo("two.png", seed=1)
    photo("three.png", seed=2)
    with pytest.raises(RuntimeError, match="worker pool was started"):
        list(run_plan(plan, detector))
    assert len(started) == 1
