"""Corpus v2 generators: TAEF2 written here from the architecture, the SD 1.5 family's helpers, AutoGAN's adversarial loss."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer import corpus_store, sd15
from trainer.generators import AutoGAN, make
from trainer.generators.taef2 import TAEF2, TAEF2Net

from images import textured_photo

TAEF2_WEIGHTS = Path(__file__).resolve().parents[3] / "shared" / "data" / "generators" / "taef2"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255 ** 2 / mse))


def test_taef2_layout_matches_the_published_weights_by_name_and_shape():
    net = TAEF2Net()
    assert len(net.encoder.state_dict()) == len(net.decoder.state_dict()) == 79
    assert net.encoder(torch.zeros(1, 3, 64, 64)).shape == (1, 32, 8, 8)
    assert net(torch.zeros(1, 3, 64, 48)).shape == (1, 3, 64, 48)


@pytest.mark.skipif(not TAEF2_WEIGHTS.is_dir(), reason="TAEF2 weights live in ../shared/data, beside the checkout")
def test_taef2_reconstructs_a_photo_closely_but_not_exactly(one_thread):
    """decode(encode(x)) must be an aligned fake: the same picture (PSNR ~26 dB on this noisy synthetic photo, 25-32 dB on
    BSDS500 photos) but never the same pixels."""
    g = make("taef2", taef2_weights=TAEF2_WEIGHTS)
    info = g.prepare([], Path("."), 0)
    assert info["encoder_sha256"].startswith("10a4e102") and info["decoder_sha256"].startswith("0a44a31e")
    window = np.asarray(textured_photo(128, 128, 4))
    fake = g(window)
    assert fake.shape == window.shape and fake.dtype == np.uint8
    assert 23 < psnr(fake, window) < 60


def test_taef2_refuses_missing_or_wrong_weights(tmp_path):
    with pytest.raises(RuntimeError, match="--taef2-weights"):
        TAEF2(None).prepare([], tmp_path, 0)
    with pytest.raises(RuntimeError, match="taef2_encoder.pth"):
        TAEF2(tmp_path).prepare([], tmp_path, 0)
    for name in ("taef2_encoder.pth", "taef2_decoder.pth"):
        torch.save({}, tmp_path / name)
    with pytest.raises(RuntimeError, match="not the TAEF2 encoder"):
        TAEF2(tmp_path).prepare([], tmp_path, 0)


def test_sd15_tiles_split_grids_and_windows_stay_on_the_macroblock_grid(tmp_path):
    textured_photo(1024, 1024, 1).save(tmp_path / "grid.webp", quality=70)
    textured_photo(600, 400, 2).save(tmp_path / "single.webp", quality=70)
    textured_photo(200, 200, 3).save(tmp_path / "tiny.webp", quality=70)
    tiles = sd15.list_tiles(tmp_path)
    assert [(t.grid, t.index) for t in tiles] == [("grid.webp", i) for i in range(4)] + [("single.webp", 0)]
    assert tiles[3].box == (512, 512, 1024, 1024)
    pixels, dy, dx = sd15.window(tmp_path, tiles[3], 256, seed=0)
    assert pixels.shape == (256, 256, 3) and dy % 16 == 0 and dx % 16 == 0
    with Image.open(tmp_path / "grid.webp") as im:
        expected = np.asarray(im.convert("RGB"))[512 + dy:768 + dy, 512 + dx:768 + dx]
    assert np.array_equal(pixels, expected)
    assert np.array_equal(sd15.window(tmp_path, tiles[3], 256, seed=0)[0], pixels)


def test_webp_quality_estimate_recovers_the_saved_quality(tmp_path):
    for quality in (50, 90):
        textured_photo(512, 512, 5).save(tmp_path / f"q{quality}.webp", quality=quality, method=4)
    estimates = {q: sd15.estimate_webp_quality(tmp_path / f"q{q}.webp") for q in (50, 90)}
    assert abs(estimates[50] - 50) <= 10 and abs(estimates[90] - 90) <= 5


def test_sharpness_ranks_a_blurred_copy_below_its_original():
    window = np.asarray(textured_photo(128, 128, 6))
    from PIL import ImageFilter
    blurred = np.asarray(Image.fromarray(window).filter(ImageFilter.GaussianBlur(1.5)))
    assert corpus_store.sharpness(blurred) < 0.5 * corpus_store.sharpness(window)


def test_autogan_adversarial_training_runs_and_is_cached_under_its_own_name(tmp_path, one_thread):
    windows = [np.asarray(textured_photo(64, 64, i)) for i in range(4)]
    g = AutoGAN("convt", steps=2, batch=2, patch=32, width=4)
    info = g.prepare(windows, tmp_path, 0)
    assert info["trained"] and info["adversarial_weight"] == 0.02
    assert (tmp_path / "autogan_convt-w4-adv0.02-seed0-steps2.pt").is_file()
    plain = AutoGAN("convt", steps=2, batch=2, patch=32, width=4, adversarial_weight=0)
    assert plain.prepare(windows, tmp_path, 0)["trained"]  # a different cache entry, not the adversarial one
    assert (tmp_path / "autogan_convt-w4-seed0-steps2.pt").is_file()
