"""The scan job without the CLI: its checks, its typed header, its writer loop and its verdict."""
import json
from pathlib import Path

import pytest

from ipdscan import ScanOptions, load_detector
from ipdscan.choices import EXIT_ERROR, EXIT_FLAGGED, EXIT_OK
from ipdscan.reports.header import ReportHeader
from ipdscan.reports.header_file import header_path
from ipdscan.scanning.job import JobError, ScanJob
from ipdscan.scanning.ray_scan import RayOptions
from ipdscan.scanning.result import Result
from ipdscan.scanning.scan_group import ScanGroup
from ipdscan.scanning.verdict import ScanStats, verdict

from images import make_corpus


@pytest.mark.parametrize("request_, message", [
    (dict(out="r.txt"), "unsupported report format"),
    (dict(out="missing/r.csv"), "does not exist"),
    (dict(out="r.csv", resume=True), "--resume needs --out FILE.jsonl"),
    (dict(resume=True), "--resume needs --out FILE.jsonl"),
    (dict(out="r.jsonl", retry_errors=True), "use it with --resume"),
    (dict(group=ScanGroup(0, 2, 0)), "a torchrun scan needs --out"),
])
def test_a_request_that_cannot_run_is_refused_before_anything_is_opened(tmp_path, monkeypatch, request_, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(JobError, match=message):
        ScanJob(["photos/"], ScanOptions(), **request_)
    assert list(tmp_path.iterdir()) == []


def test_ray_scores_with_the_torch_backend(tmp_path, monkeypatch):
    """Ray's scoring actors load the torch detector: --ray with --backend onnxruntime is refused at once."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(JobError, match="--ray scores with the torch backend"):
        ScanJob(["photos/"], ScanOptions(backend="onnxruntime"), ray=RayOptions())
    assert ScanJob(["photos/"], ScanOptions(backend="onnxruntime")).backend == "onnxruntime"


def test_the_job_writes_every_row_and_a_typed_header(tmp_path, checkpoint):
    (tmp_path / "photos").mkdir()
    make_corpus(tmp_path / "photos", ["jpeg", "png", "empty"])
    out = tmp_path / "r.jsonl"
    detector = load_detector(checkpoint, "cpu")
    with ScanJob([str(tmp_path / "photos")], ScanOptions(workers=0), out=out, fail_on_error=True) as job:
        assert out.with_name("r.jsonl.lock").exists()
        header = job.start(detector)
        batches = []
        outcome = job.run(on_batch=lambda stats: batches.append(stats.scanned))
    assert not out.with_name("r.jsonl.lock").exists()
    assert isinstance(header, ReportHeader) and header.precision == detector.precision and header.decode == "workers"
    written = json.loads(header_path(out).read_text())
    assert written == header.to_dict() and list(written)[:2] == ["tool", "version"]
    assert len(out.read_text().splitlines()) == outcome.stats.scanned == 3 and batches == [3]
    assert outcome.stopped_by is None and outcome.rows == []
    assert outcome.verdict.code == EXIT_ERROR and "could not be scanned" in outcome.verdict.reason


def test_without_a_report_the_rows_come_back(tmp_path, checkpoint):
    make_corpus(tmp_path, ["jpeg"])
    with ScanJob([str(tmp_path)], ScanOptions(workers=0)) as job:
        job.start(load_detector(checkpoint, "cpu"))
        outcome = job.run()
    assert [Path(row.input).name for row in outcome.rows] == ["photo.jpg"] and outcome.verdict.code == EXIT_OK


def test_the_job_derives_its_own_options_and_leaves_the_callers_alone(tmp_path):
    """Resume's skip and torchrun's shard go into the job's copy of the options, never into the caller's."""
    (tmp_path / "r.jsonl").write_text("")
    given = ScanOptions(workers=0)
    with ScanJob([str(tmp_path)], given, out=tmp_path / "r.jsonl", resume=True) as job:
        assert job.options.skip is not None and job.options.workers == 0
    ranked = ScanJob([str(tmp_path)], given, out=tmp_path / "s.jsonl", group=ScanGroup(1, 2, 1))
    assert ranked.options.shard == ScanGroup(1, 2, 1).shard
    assert given == ScanOptions(workers=0)


def test_errors_win_over_flags():
    stats = ScanStats()
    stats.add(Result(input="a.jpg", score=0.95, label="ai"))
    assert verdict(stats, missing=[], fail_on=0.9).code == EXIT_FLAGGED
    assert verdict(stats, missing=["gone.jpg"], fail_on=0.9).code == EXIT_ERROR
