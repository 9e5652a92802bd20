"""Which backend scores a scan (``backends.choose_backend``, ``load_backend``): torch on CUDA, else ONNX Runtime
where the weights have their .onnx export beside them, else torch; what each refuses."""
import pytest

from ipdscan.model import backends
from ipdscan.model.backends import choose_backend, load_backend, onnx_beside
from ipdscan.model.runtime import DeviceError
from ipdscan.model.weights import WeightsError


@pytest.fixture
def exported(tmp_path):
    """A weights path with a file where its .onnx export goes (choosing looks only at whether it exists)."""
    weights = tmp_path / "w.pt"
    onnx_beside(weights).write_bytes(b"")
    return weights


def test_auto_is_onnx_runtime_on_the_cpu_where_the_export_exists(tmp_path, exported, monkeypatch):
    assert onnx_beside(exported) == tmp_path / "w.onnx"
    assert choose_backend("auto", "cpu", exported) == "onnxruntime"
    assert choose_backend("auto", "cpu", tmp_path / "other.pt") == "torch"  # no export beside it
    assert choose_backend("auto", "cuda:1", exported) == "torch"
    assert choose_backend("torch", "cpu", exported) == "torch"
    assert choose_backend("onnxruntime", "cpu", tmp_path / "other.pt") == "onnxruntime"  # load_backend explains
    monkeypatch.setattr(backends, "importable", lambda module: module != "onnxruntime")
    assert choose_backend("auto", "cpu", exported) == "torch"  # ONNX Runtime not installed


def test_auto_is_torch_where_cuda_is(exported, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_backend("auto", "auto", exported) == "torch"
    assert choose_backend("auto", "cpu", exported) == "onnxruntime"  # --device cpu asks for the CPU


def test_weights_that_are_an_onnx_export_score_with_onnx_runtime_only(tmp_path, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    export_only = tmp_path / "ensemble.onnx"  # no checkpoint beside it, none to be had
    assert choose_backend("auto", "auto", export_only) == "onnxruntime"
    with pytest.raises(WeightsError, match="is an ONNX export: the torch backend reads checkpoints"):
        load_backend(export_only, "cpu", backend="torch")
    with pytest.raises(DeviceError, match="use --device cpu$"):
        load_backend(export_only, "cuda")


def test_onnx_runtime_refuses_what_only_torch_does(tmp_path, exported):
    with pytest.raises(DeviceError, match="scores on the CPU"):
        load_backend(exported, "cuda", backend="onnxruntime")
    with pytest.raises(ValueError, match="--precision bf16 is the torch backend's"):
        load_backend(exported, "cpu", "bf16", backend="onnxruntime")
    with pytest.raises(WeightsError, match="no ONNX model beside the weights"):
        load_backend(tmp_path / "other.pt", "cpu", backend="onnxruntime")


def test_torch_loads_the_checkpoint_itself(checkpoint):
    detector = load_backend(checkpoint, "cpu", "fp32")  # no export beside it: auto is torch
    assert (detector.backend, str(detector.device), detector.precision) == ("torch", "cpu", "fp32")
