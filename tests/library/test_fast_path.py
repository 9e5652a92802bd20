"""Detector.score's inference form (folded BatchNorm, no dependency matrix, bf16 trunk) against the reference
``model(to_model_input(crops))`` in float32, and how ``precision="auto"`` chooses.

The models are random IPD-Nets made realistic where it matters for numerics: BatchNorm statistics measured on
the test images (as training leaves them) and the last layer scaled so logits spread like a trained detector's
(std ~2), so that probabilities are not all saturated at 0 or 1 and a tolerance on them means something.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ipdscan.model.runtime as runtime
from ipdscan.model.detector import Detector, load_detector
from ipdscan.model.ipdnet import IPDConfig, IPDNet
from ipdscan.model.preprocess import Preprocessing
from ipdscan.model.runtime import resolve_precision
from ipdscan.model.torch_preprocess import to_model_input
from ipdscan.model.weights import load_checkpoint, save_checkpoint

CPU = torch.device("cpu")


def natural_crops(count: int, seed: int = 0, side: int = 224) -> torch.Tensor:
    """(count, 3, side, side) uint8: multi-scale smooth colour fields plus grain, photo-like for the SRM filter."""
    g = torch.Generator().manual_seed(seed)
    field = torch.zeros(count, 3, side, side)
    for octave in range(6):
        cells = 2 ** (octave + 1)
        coarse = torch.randn(count, 3, cells, cells, generator=g)
        field += F.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=False) * 0.55 ** octave
    field = field / field.std() * 40 + 128 + torch.randn(count, 1, side, side, generator=g) * 3
    return field.clamp(0, 255).round().to(torch.uint8)


def realistic_checkpoint(path, variant: str, images: torch.Tensor, size: int = 256) -> None:
    torch.manual_seed(0)
    model = IPDNet(IPDConfig(variant=variant, input_size=size))
    preprocessing = Preprocessing(size=size)
    x = to_model_input(images, preprocessing)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # a plain average over the calibration batch
    with torch.no_grad():
        model.train()(x)
        logits = model.eval()(x)
        last = model.head.classifier[-1] if isinstance(model.head.classifier, torch.nn.Sequential) else model.head.classifier
        last.weight.mul_(2 / logits.std())
        last.bias.sub_(logits.mean() * 2 / logits.std())
    save_checkpoint(path, model, preprocessing, name=f"realistic-{variant}")


@pytest.fixture(scope="module")
def crops():
    return natural_crops(48)


@pytest.fixture(scope="module")
def layer2(tmp_path_factory, crops):
    path = tmp_path_factory.mktemp("fast") / "layer2.pt"
    realistic_checkpoint(path, "layer2", crops[:12])
    return path


def reference_logits(path, crops: torch.Tensor) -> torch.Tensor:
    """The model exactly as trained and specified: a fresh copy, float32, contiguous, the full dependency matrix."""
    checkpoint = load_checkpoint(path)
    with torch.inference_mode():
        return checkpoint.model.eval()(to_model_input(crops, checkpoint.preprocessing))


def probabilities(detector: Detector, crops: torch.Tensor) -> torch.Tensor:
    """``Detector.score``'s numpy probabilities as a tensor, to compare with the reference network's."""
    return torch.from_numpy(detector.score(crops))


def detector_logits(detector: Detector, crops: torch.Tensor) -> torch.Tensor:
    probs = probabilities(detector, crops).double()
    return torch.log(probs / (1 - probs)).float()


@pytest.fixture(scope="module")
def layer3_small(tmp_path_factory, crops):
    """layer3 (a one-layer classifier, like layer4) at a 128 px input: a quarter of the real arithmetic."""
    path = tmp_path_factory.mktemp("fast") / "layer3.pt"
    realistic_checkpoint(path, "layer3", crops[:8], size=128)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["layer2", "layer3_small"])
def test_fp32_fast_path_equals_reference(request, crops, weights):
    path = request.getfixturevalue(weights)
    detector = load_detector(path, "cpu", precision="fp32")
    sample = crops[12:18]
    reference = reference_logits(path, sample)
    # float32 reassociation only (folded BatchNorm, the pooled head summed in another order, channels_last)
    torch.testing.assert_close(detector_logits(detector, sample), reference, atol=2e-3, rtol=1e-3)
    with torch.inference_mode():  # the detector's own model stays the unfolded reference network
        own = detector.model(to_model_input(sample, detector.preprocessing))
    torch.testing.assert_close(own, reference, atol=2e-3, rtol=1e-3)


@pytest.mark.slow
def test_bf16_scores_stay_close_to_fp32(layer2, crops):
    """bf16 rounds every activation to 8 significant bits; through 20 random conv layers that moves these
    logits (std ~2) by ~0.14 on average (0.4 at most), so probabilities by ~0.02 (0.08 at most), and the
    ranking, which is all AP sees, keeps a Spearman correlation of ~0.98 (~0.999 on real photos). Running
    the SRM filter in bf16 too, the tempting one-line autocast, gives 0.11 / 0.42 / 0.87: these bounds fail it."""
    sample = crops[12:]
    reference = torch.sigmoid(reference_logits(layer2, sample))
    probs = probabilities(load_detector(layer2, "cpu", precision="bf16"), sample)
    difference = (probs - reference).abs()
    assert difference.mean() <= 0.04 and difference.max() <= 0.15, difference
    ranks = lambda t: t.argsort().argsort().double().numpy()  # noqa: E731
    assert np.corrcoef(ranks(probs), ranks(reference))[0, 1] >= 0.95


def test_score_returns_probabilities(layer2, crops):
    detector = load_detector(layer2, "cpu", precision="fp32")
    probs = detector.score(crops[:3])
    assert probs.shape == (3,) and probs.dtype == np.float32  # the Backend protocol's scores
    assert ((probs > 0) & (probs < 1)).all()
    assert np.array_equal(detector.score(crops[:3].numpy()), probs)  # the CPU stage hands it numpy crops
    assert detector.score(torch.empty(0, 3, 224, 224, dtype=torch.uint8)).shape == (0,)
    assert detector.score(np.empty((0, 3, 224, 224), np.uint8)).shape == (0,)


def test_cpu_micro_batches_score_each_image_on_its_own(layer2, crops):
    detector = load_detector(layer2, "cpu", precision="fp32")
    batch = crops[:5]  # more than one micro-batch, and a short last one
    one_by_one = torch.cat([probabilities(detector, crop[None]) for crop in batch])
    torch.testing.assert_close(probabilities(detector, batch), one_by_one, atol=1e-4, rtol=1e-4)


def test_auto_picks_fp32_without_native_bf16(layer2, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert load_detector(layer2, "cpu").precision == "fp32"
    assert resolve_precision("auto", CPU, "layer2") == "fp32"
    assert resolve_precision("bf16", CPU, "layer2") == "bf16"  # asked for explicitly: emulated, slow, allowed


def test_auto_picks_mixed_only_where_native_and_measured_for_the_variant(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", CPU, "layer2") == "mixed"
    assert resolve_precision("auto", CPU, "layer4") == "fp32"
    assert resolve_precision("fp32", CPU, "layer2") == "fp32"


@pytest.mark.slow
def test_mixed_keeps_the_stem_and_first_stage_in_fp32(layer2, crops):
    """Closer to fp32 than bf16 is: the early stages, where the SRM residuals are raw, stay in float32."""
    sample = crops[12:]
    reference = torch.sigmoid(reference_logits(layer2, sample))
    mixed, bf16 = (load_detector(layer2, "cpu", precision=p) for p in ("mixed", "bf16"))
    assert mixed.fp32_stages == 2 and bf16.fp32_stages == 0 and len(mixed.stages) == 3  # stem, layer1, layer2
    mixed_error = (probabilities(mixed, sample) - reference).abs().mean()
    assert mixed_error < (probabilities(bf16, sample) - reference).abs().mean()
    assert mixed_error > 0  # layer2 did run in bf16


def test_native_bf16_is_read_from_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2", "fma", "avx512f"}))
    assert not runtime.cpu_has_native_bf16()
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert runtime.cpu_has_native_bf16() == torch.backends.mkldnn.is_available()


def test_unknown_precision_is_refused(layer2):
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        load_detector(layer2, "cpu", precision="fp16")
