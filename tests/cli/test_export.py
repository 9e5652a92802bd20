"""`ipdscan export`: a checkpoint to an ONNX model that scores as it does, its sidecar and metadata; the errors."""
import os
import shutil

import pytest

from ipdscan.model.onnx_backend import load_onnx_detector
from ipdscan.model.weights import load_checkpoint, sidecar


@pytest.mark.slow
def test_export_writes_a_verified_onnx_beside_the_checkpoint(cli, checkpoint, tmp_path, one_thread):
    source = shutil.copy(checkpoint, tmp_path / "run.pt")
    shutil.copy(sidecar(checkpoint), sidecar(tmp_path / "run.pt"))
    done = cli("export", source)
    assert done.exit_code == 0, done.output
    out = tmp_path / "run.onnx"
    exported = load_onnx_detector(out)
    recorded = sidecar(out).read_text()
    assert recorded == f"{exported.sha256}  run.onnx\n"
    words = done.stdout.split()
    assert words[:4] == ["wrote", str(out), "sha256", f"{exported.sha256};"] and done.stderr == ""
    assert float(words[-4]) <= 1e-3  # "... the torch backend 3.1e-06 over 16 crops"
    original = load_checkpoint(source)
    assert (exported.name, exported.threshold, exported.preprocessing) == (original.name, original.threshold,
                                                                           original.preprocessing)
    assert exported.metadata["source_sha256"] == original.sha256


@pytest.mark.slow
def test_an_export_that_scores_differently_is_refused(cli, checkpoint, tmp_path, monkeypatch, one_thread):
    monkeypatch.setattr("ipdscan.model.export.MAX_DIFFERENCE", -1.0)  # any difference, even none, is too large
    done = cli("export", checkpoint, "--out", tmp_path / "x.onnx")
    assert done.exit_code == 2 and done.stdout == ""
    assert "scores differently from it: max |difference|" in done.stderr and "nothing written" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_export_errors_are_one_line_and_exit_2(cli, checkpoint, tmp_path):
    (tmp_path / "text.pt").write_text("not a checkpoint")
    os.link(checkpoint, tmp_path / "linked.onnx")  # the checkpoint by another name (issue 33, item 8)
    for args, message in (
            ([tmp_path / "missing.pt"], "weights file not found: "),
            ([tmp_path / "text.pt"], "not a safe ipdscan checkpoint"),
            ([checkpoint, "--out", tmp_path / "no" / "such" / "x.onnx"], "cannot write "),
            ([checkpoint, "--out", tmp_path], "it is a folder"),
            ([checkpoint, "--out", checkpoint], "is the checkpoint itself"),
            ([checkpoint, "--out", tmp_path / "linked.onnx"], "is the checkpoint itself")):
        done = cli("export", *args)
        assert (done.exit_code, done.stdout) == (2, ""), done.output
        assert done.stderr.startswith("error: ") and message in " ".join(done.stderr.split())
        assert "Traceback" not in done.output
