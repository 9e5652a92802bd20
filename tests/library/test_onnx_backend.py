"""The ONNX Runtime backend: the shipped .onnx scores as the shipped .pt does and carries its metadata; a tampered
file or a file that is not an ipdscan export is refused; the module loads without torch."""
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from ipdscan.model.detector import load_detector
from ipdscan.model.onnx_backend import default_onnx_path, load_onnx_detector
from ipdscan.model.pins import DEFAULT_ONNX, DEFAULT_WEIGHTS
from ipdscan.model.preprocess import crop
from ipdscan.model.weights import WeightsError, load_checkpoint, sidecar
from ipdscan.scanning.decode import decode

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def shipped_onnx():
    return load_onnx_detector()


def example_crops(preprocessing) -> np.ndarray:
    """The scan's centre crops of examples/*.jpg, as the CPU stage makes them."""
    images = sorted(EXAMPLES.glob("*.jpg"))
    assert len(images) == 8
    return np.stack([crop(decode(path.read_bytes()).pixels, preprocessing) for path in images])


def test_the_shipped_onnx_scores_the_examples_as_the_shipped_weights_do(shipped_onnx, one_thread):
    torch_backend = load_detector(None, "cpu", "fp32")
    crops = example_crops(torch_backend.preprocessing)
    onnx_scores, torch_scores = shipped_onnx.score(crops), torch_backend.score(crops)
    assert onnx_scores.dtype == np.float32 and onnx_scores.shape == (8,)
    assert np.abs(onnx_scores - torch_scores).max() <= 1e-3
    # unsaturated and spread: agreement is not two backends pinned at 0 or 1 together
    assert 0.01 < onnx_scores.min() and onnx_scores.max() < 0.99 and np.ptp(onnx_scores) > 0.2


def test_the_shipped_onnx_carries_the_shipped_weights_metadata(shipped_onnx):
    checkpoint = load_checkpoint(default_onnx_path().with_name(DEFAULT_WEIGHTS.file))
    assert (shipped_onnx.name, shipped_onnx.variant) == (checkpoint.name, checkpoint.config.variant)
    assert shipped_onnx.threshold == checkpoint.threshold != 0.5  # calibrated
    assert shipped_onnx.preprocessing == checkpoint.preprocessing
    def as_json(value):
        return json.loads(json.dumps(value, default=str))
    assert shipped_onnx.metadata["calibration"] == as_json(checkpoint.calibration)
    assert shipped_onnx.metadata["provenance"] == as_json(checkpoint.provenance)
    assert shipped_onnx.metadata["config"] == checkpoint.config.to_dict()
    assert shipped_onnx.metadata["source_sha256"] == DEFAULT_WEIGHTS.sha256
    assert (shipped_onnx.device, shipped_onnx.backend) == ("cpu", "onnxruntime")


def test_the_shipped_onnx_is_pinned_as_its_sidecar_records(shipped_onnx):
    assert default_onnx_path().name == DEFAULT_ONNX.file
    assert shipped_onnx.sha256 == DEFAULT_ONNX.sha256 == sidecar(default_onnx_path()).read_text().split()[0]


def test_no_crops_give_no_scores(shipped_onnx):
    scores = shipped_onnx.score(np.zeros((0, 3, 224, 224), np.uint8))
    assert scores.shape == (0,) and scores.dtype == np.float32


@pytest.mark.parametrize("keep_sidecar", [True, False])  # without it, the pin in the code refuses it
def test_a_modified_byte_is_refused(tmp_path, keep_sidecar):
    path = tmp_path / DEFAULT_ONNX.file
    data = bytearray(default_onnx_path().read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the weights
    path.write_bytes(bytes(data))
    if keep_sidecar:
        shutil.copy(sidecar(default_onnx_path()), sidecar(path))
    with pytest.raises(WeightsError, match=rf"{DEFAULT_ONNX.file} does not match its recorded sha256"):
        load_onnx_detector(path)


def test_an_onnx_model_without_the_metadata_is_refused(tmp_path):
    model = onnx.load(default_onnx_path())
    del model.metadata_props[:]
    onnx.save(model, tmp_path / "bare.onnx")
    with pytest.raises(WeightsError, match="bare.onnx is not an ipdscan ONNX export"):
        load_onnx_detector(tmp_path / "bare.onnx")
    onnx.helper.set_model_props(model, {"format": '"ipdscan-onnx"', "name": '"x"'})
    onnx.save(model, tmp_path / "partial.onnx")
    with pytest.raises(WeightsError, match=r"lacks the metadata a scan needs \(format_version, config, "):
        load_onnx_detector(tmp_path / "partial.onnx")


def test_missing_and_non_onnx_files_are_refused(tmp_path):
    with pytest.raises(WeightsError, match=r"ONNX model not found: .*nope\.onnx.*ipdscan export"):
        load_onnx_detector(tmp_path / "nope.onnx")
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(WeightsError, match=r"cannot read ONNX model .*text\.onnx: not an ONNX model"):
        load_onnx_detector(tmp_path / "text.onnx")


@pytest.mark.slow
def test_the_backend_scores_without_importing_torch(run_cli):
    done = run_cli.python("-c", "import sys, numpy as np; from ipdscan.model.onnx_backend import load_onnx_detector; "
                                "d = load_onnx_detector(threads=1); print(d.score(np.zeros((1, 3, 224, 224), np.uint8))); "
                                "print('torch' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "False"
