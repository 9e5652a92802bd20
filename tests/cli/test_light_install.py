"""The base install (issue 32): `ipdscan scan` on the CPU without torch, through ONNX Runtime, and one line naming
the extra for every command that needs torch. ``run_cli_without_torch`` makes ``import torch`` fail in the
processes these tests start, their worker processes included."""
import json
from pathlib import Path

import pytest

from ipdscan.model.backends import onnx_beside
from ipdscan.model.weights import default_weights_path
from ipdscan.scanning.result import Result

from images import make_image

SHIPPED_ONNX = onnx_beside(default_weights_path())
SCORES = ("score", "crops_max", "crops_mean")  # what may differ between backends, by float rounding


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("args, line", [
    (["train", "data"], "'ipdscan train' needs PyTorch: pip install 'ipdscan[train]'"),
    (["eval", "data"], "'ipdscan eval' needs PyTorch: pip install 'ipdscan[train]'"),
    (["explain", "a.png", "--out", "a-heat.png"], "'ipdscan explain' needs PyTorch: pip install 'ipdscan[train]'"),
    (["scan", "a.png", "--device", "cuda"], "'ipdscan scan --device cuda' needs PyTorch: pip install 'ipdscan[gpu]'"),
    (["scan", "a.png", "--backend", "torch"],
     "'ipdscan scan --backend torch' needs PyTorch: pip install 'ipdscan[gpu]'"),
    (["scan", "a.png", "--ray"], "'ipdscan scan --ray' needs PyTorch: pip install 'ipdscan[ray]'"),
])
def test_a_command_that_needs_torch_says_which_extra_brings_it(tmp_path, run_cli_without_torch, args, line):
    make_image(tmp_path / "a.png", "png")
    proc = run_cli_without_torch(*args, cwd=tmp_path)
    assert (proc.returncode, proc.stderr.replace("\n", " ").strip()) == (2, f"error: {line}"), proc.stderr


@pytest.mark.slow
def test_weights_without_an_onnx_export_need_torch_to_scan(tmp_path, checkpoint, run_cli_without_torch):
    make_image(tmp_path / "a.png", "png")
    proc = run_cli_without_torch("scan", "a.png", "--weights", checkpoint, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("error:") == 1, proc.stderr
    assert f"needs PyTorch for weights without {checkpoint.stem}.onnx beside them" in proc.stderr.replace("\n", " ")
    assert "pip install 'ipdscan[gpu]'" in proc.stderr.replace("\n", " ")


@pytest.mark.slow
def test_version_and_merge_need_no_torch(tmp_path, run_cli_without_torch, write_report):
    version = run_cli_without_torch("--version", cwd=tmp_path)
    assert version.returncode == 0 and "torch not installed" in version.stdout and "onnxruntime" in version.stdout
    part = write_report(tmp_path / "part.jsonl", [Result("a.png", score=0.1, label="real")])
    merged = run_cli_without_torch("merge", part, "--out", "all.csv", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED_ONNX.is_file(), reason=f"{SHIPPED_ONNX.name} is not exported yet")
def test_the_base_install_scans_with_onnx_runtime_as_torch_does(tmp_path, run_cli_without_torch, monkeypatch, cli):
    """Worker processes, stdin, --crops and a file that fails: every column as the torch backend writes it but
    the scores, which agree to float rounding."""
    for name, kind in (("a.png", "png"), ("b.jpg", "jpeg"), ("c.webp", "webp"), ("d.png", "truncated_png")):
        make_image(tmp_path / name, kind)
    names = "a.png\nb.jpg\nmissing.png\nc.webp\nd.png\n"
    light = run_cli_without_torch("scan", "-", "--out", "light.jsonl", "--workers", "2", "--batch-size", "2",
                                  "--crops", "2", cwd=tmp_path, stdin=names)
    assert light.returncode == 0, light.stderr
    header = json.loads((tmp_path / "light.jsonl.header.json").read_text())
    assert (header["backend"], header["device"], header["precision"]) == ("onnxruntime", "cpu", "fp32")
    monkeypatch.chdir(tmp_path)
    with_torch = cli.scan("-", "--out", "torch.jsonl", "--batch-size", "2", "--crops", "2", "--backend", "torch",
                          "--precision", "fp32", input=names)
    assert with_torch.exit_code == 0, with_torch.output
    assert json.loads((tmp_path / "torch.jsonl.header.json").read_text())["backend"] == "torch"
    onnx_rows, torch_rows = rows(tmp_path / "light.jsonl"), rows(tmp_path / "torch.jsonl")
    assert [row["status"] for row in onnx_rows] == ["ok", "ok", "error", "ok", "error"]
    assert [{**row, **dict.fromkeys(SCORES)} for row in onnx_rows] == \
        [{**row, **dict.fromkeys(SCORES)} for row in torch_rows]
    for onnx_row, torch_row in zip(onnx_rows, torch_rows):
        for column in SCORES:
            assert onnx_row[column] == pytest.approx(torch_row[column], abs=1e-4)


def test_a_bare_version_is_answered_without_importing_the_cli(run_cli_without_torch):
    """`ipdscan --version` is the start-up users time: on the base install, entry.py answers it before typer, rich
    or numpy load."""
    run = run_cli_without_torch.python("-c", "import sys; sys.argv = ['ipdscan', '--version']; from ipdscan.entry import main; "
                         "main(); print(sorted({'typer', 'rich', 'numpy', 'ipdscan.cli.commands'} & set(sys.modules)))")
    lines = run.stdout.splitlines()
    assert lines[0].startswith("ipdscan ") and lines[-1] == "[]", run.stderr
    assert any(line.startswith("default weights ") for line in lines)
