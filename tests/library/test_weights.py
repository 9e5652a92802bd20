import pickle

import pytest
import torch

from ipdscan.model.weights import WeightsError, load_checkpoint, sidecar

from checkpoints import make_checkpoint


def scores(ckpt, x):
    with torch.no_grad():
        return torch.sigmoid(ckpt.model(x))


def test_round_trip_gives_identical_scores(tmp_path):
    path = make_checkpoint(tmp_path / "a.pt", seed=3)
    first, second = load_checkpoint(path), load_checkpoint(path)
    x = torch.randn(2, 3, 256, 256)
    assert torch.equal(scores(first, x), scores(second, x))
    assert first.config.variant == "layer2" and first.name == "test-layer2"
    assert first.provenance == {"purpose": "tests", "seed": 3}
    assert sidecar(path).read_text().split()[0] == first.sha256


def test_fp16_storage_scores_within_1e3_of_fp32(tmp_path):
    full = load_checkpoint(make_checkpoint(tmp_path / "full.pt", seed=1))
    half = load_checkpoint(make_checkpoint(tmp_path / "half.pt", seed=1, half=True))
    x = torch.randn(4, 3, 256, 256)
    assert half.meta["dtype"] == "float16"
    assert (scores(full, x) - scores(half, x)).abs().max() < 1e-3
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * (tmp_path / "full.pt").stat().st_size


@pytest.mark.parametrize("keep_sidecar", [True, False])
def test_a_flipped_byte_is_refused(tmp_path, keep_sidecar):
    path = make_checkpoint(tmp_path / "a.pt")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the tensor payload
    path.write_bytes(bytes(data))
    if not keep_sidecar:
        sidecar(path).unlink()
    with pytest.raises(WeightsError, match="a.pt"):
        load_checkpoint(path)


def test_missing_file_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(WeightsError, match=r"not found: .*nope\.pt.*--weights"):
        load_checkpoint(tmp_path / "nope.pt")


class Payload:
    def __reduce__(self):
        import os
        return (os.system, ("touch PWNED_MARKER",))


def test_a_pickle_with_code_never_executes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": "ipdscan-checkpoint", "x": Payload()}, path)
    with pytest.raises(WeightsError, match="not a safe ipdscan checkpoint"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED_MARKER").exists()
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(WeightsError):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED_MARKER").exists()


def test_not_a_checkpoint_and_mismatched_config_are_refused(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(3)}, plain)
    with pytest.raises(WeightsError, match="not an ipdscan checkpoint"):
        load_checkpoint(plain)
    path = make_checkpoint(tmp_path / "l3.pt", variant="layer3")
    payload = torch.load(path, weights_only=True)
    payload["config"]["variant"] = "layer2"  # tensors no longer fit the config
    from ipdscan.model.weights import content_sha256
    payload["content_sha256"] = content_sha256(payload["config"], payload["preprocessing"], payload["provenance"],
                                               payload["name"], payload["state_dict"])
    torch.save(payload, path)
    sidecar(path).unlink()
    with pytest.raises(WeightsError, match="does not fit"):
        load_checkpoint(path)


def test_sidecar_mismatch_is_refused(tmp_path):
    path = make_checkpoint(tmp_path / "a.pt")
    sidecar(path).write_text("0" * 64 + "  a.pt\n")
    with pytest.raises(WeightsError, match="does not match its recorded sha256"):
        load_checkpoint(path)


def test_a_pickle_refusal_keeps_torch_s_reason_and_warning(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "ipdscan-checkpoint", "x": Payload()}, path)
    with pytest.raises(WeightsError) as refused:
        load_checkpoint(path)
    message = str(refused.value)
    assert "\n" not in message  # one line for the CLI
    assert "system" in message  # what the file tried to call
    assert "arbitrary code execution" in message  # torch's warning, no longer cut off before it


def resaved(path, section: str, **changes):
    """The checkpoint at ``path`` with ``changes`` to one section, its content hash redone and no sidecar."""
    from ipdscan.model.weights import content_sha256
    payload = torch.load(path, weights_only=True)
    payload[section].update(changes)
    payload["content_sha256"] = content_sha256(payload["config"], payload["preprocessing"], payload["provenance"],
                                               payload["name"], payload["state_dict"])
    torch.save(payload, path)
    sidecar(path).unlink(missing_ok=True)
    return path


@pytest.mark.parametrize("section,changes,named", [
    ("preprocessing", {"crop": 0}, "crop"),
    ("preprocessing", {"size": -8}, "size"),
    ("preprocessing", {"pad": -1}, "pad"),
    ("preprocessing", {"std": [0.2, 0.0, 0.2]}, "std"),
    ("preprocessing", {"mean": [0.5, 0.5]}, "mean"),
    ("preprocessing", {"crop": 2.5}, "crop"),
    ("preprocessing", {"size": 128}, "size"),  # the model was built for 256
    ("config", {"hidden": 0}, "hidden"),
    ("preprocessing", {"crop": 8000}, "crop"),  # issue 21, item 11: passed, then failed mid-scan
    ("preprocessing", {"pad": 100_000}, "pad"),
    ("config", {"input_size": 8192}, "input_size"),
    ("config", {"hidden": 1 << 20}, "hidden"),
])
def test_unusable_preprocessing_or_config_is_refused_at_load(tmp_path, section, changes, named):
    path = resaved(make_checkpoint(tmp_path / "bad.pt"), section, **changes)
    with pytest.raises(WeightsError, match=named) as refused:
        load_checkpoint(path)
    assert "bad.pt" in str(refused.value)


def test_weights_with_non_finite_parameters_are_refused_at_load(tmp_path):
    """Issue 21, item 8: NaN weights loaded, scored every image NaN, labelled it real and let --fail-on pass."""
    path = make_checkpoint(tmp_path / "nan.pt", nan=True)
    with pytest.raises(WeightsError, match=r"nan\.pt is unusable: .* hold NaN or infinite values"):
        load_checkpoint(path)


def test_a_weights_path_that_cannot_be_read_is_named():
    with pytest.raises(WeightsError, match="cannot read weights file /proc/self/mem"):
        load_checkpoint("/proc/self/mem")
