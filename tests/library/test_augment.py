import numpy as np
import pytest
import torch
from PIL import Image

import ipdscan.train.augment as augment
from ipdscan.model.preprocess import Preprocessing, crop
from ipdscan.train.augment import Augmentation, ViewParams, degrade, sample_params, train_view, val_view

SMALL = Preprocessing(pad=16, crop=16, size=16)
DRAWS = 20_000


def draws(aug: Augmentation, n: int = DRAWS, seed: int = 0) -> list[ViewParams]:
    rng = np.random.default_rng(seed)
    return [sample_params(aug, rng) for _ in range(n)]


def test_paper_recipe_probabilities_and_ranges():
    params = draws(Augmentation())
    sigmas = np.array([p.blur_sigma for p in params if p.blur_sigma is not None])
    qualities = np.array([p.jpeg_quality for p in params if p.jpeg_quality is not None])
    # Binomial standard error at p=0.1, n=20000 is 0.002; at p=0.5 it is 0.0035.
    assert len(sigmas) / DRAWS == pytest.approx(0.1, abs=0.01)
    assert len(qualities) / DRAWS == pytest.approx(0.1, abs=0.01)
    assert np.mean([p.flip for p in params]) == pytest.approx(0.5, abs=0.015)
    assert sigmas.min() >= 0 and sigmas.max() <= 3 and sigmas.mean() == pytest.approx(1.5, abs=0.1)
    assert qualities.dtype.kind == "i" and qualities.min() == 30 and qualities.max() == 100
    assert qualities.mean() == pytest.approx(65, abs=1.5)
    both = sum(p.blur_sigma is not None and p.jpeg_quality is not None for p in params) / DRAWS
    assert both == pytest.approx(0.01, abs=0.004)  # independent decisions


def test_configured_probabilities_and_ranges_hold():
    params = draws(Augmentation(blur_prob=1.0, blur_sigma=(1.0, 2.0), jpeg_prob=0.0, jpeg_quality=(90, 95), flip_prob=0.0),
                   n=5000)
    assert all(p.blur_sigma is not None and 1.0 <= p.blur_sigma <= 2.0 for p in params)
    assert all(p.jpeg_quality is None and not p.flip for p in params)
    qualities = {p.jpeg_quality for p in draws(Augmentation(jpeg_prob=1.0, jpeg_quality=(90, 95)), n=2000)}
    assert qualities == {90, 91, 92, 93, 94, 95}


def test_train_view_applies_what_it_sampled(monkeypatch):
    """Record the blur and JPEG calls train_view makes: they follow the probabilities and ranges."""
    blurs, jpegs = [], []
    monkeypatch.setattr(augment, "gaussian_blur", lambda image, sigma: blurs.append(sigma) or image)
    monkeypatch.setattr(augment, "jpeg_reencode", lambda image, quality: jpegs.append(quality) or image)
    image = torch.zeros(3, 20, 20, dtype=torch.uint8)
    aug = Augmentation(blur_prob=0.3, blur_sigma=(0.5, 1.0), jpeg_prob=0.6, jpeg_quality=(40, 50))
    rng = np.random.default_rng(1)
    for _ in range(3000):
        assert train_view(image, aug, SMALL, rng).shape == (3, 16, 16)
    assert len(blurs) / 3000 == pytest.approx(0.3, abs=0.03) and min(blurs) >= 0.5 and max(blurs) <= 1.0
    assert len(jpegs) / 3000 == pytest.approx(0.6, abs=0.03) and set(jpegs) == set(range(40, 51))


def test_same_rng_state_gives_the_same_view_and_flip_mirrors_it():
    pixels = np.random.default_rng(0).integers(0, 256, (24, 30, 3), dtype=np.uint8)
    image = torch.from_numpy(pixels).permute(2, 0, 1)
    view = lambda aug, seed: train_view(image, aug, SMALL, np.random.default_rng(seed))  # noqa: E731
    plain = Augmentation(blur_prob=0, jpeg_prob=0, flip_prob=0)
    assert torch.equal(view(plain, 4), view(plain, 4))
    assert torch.equal(view(Augmentation(blur_prob=0, jpeg_prob=0, flip_prob=1), 4), view(plain, 4).flip(-1))
    assert not torch.equal(view(plain, 4), view(plain, 5))


def test_validation_view_is_the_scan_centre_crop():
    pixels = np.random.default_rng(0).integers(0, 256, (24, 30, 3), dtype=np.uint8)
    expected = crop(torch.from_numpy(pixels).permute(2, 0, 1), SMALL)
    assert torch.equal(val_view(torch.from_numpy(pixels).permute(2, 0, 1), SMALL), expected)


def test_degradations_change_pixels_and_skip_when_not_drawn():
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    assert np.array_equal(np.asarray(degrade(image, ViewParams(None, None, False))), pixels)
    blurred = np.asarray(degrade(image, ViewParams(2.0, None, False))).astype(float)
    assert blurred.std() < 0.5 * pixels.std()  # blur removes most of white noise's variance
    jpeg = np.asarray(degrade(image, ViewParams(None, 30, False))).astype(float)
    assert 1 < np.abs(jpeg - pixels).mean() < 80


@pytest.mark.parametrize("bad", [dict(blur_prob=1.5), dict(flip_prob=-0.1), dict(blur_sigma=(2.0, 1.0)),
                                 dict(jpeg_quality=(0, 100)), dict(jpeg_quality=(80, 101))])
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ValueError):
        Augmentation(**bad)
