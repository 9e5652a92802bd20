"""trainer.build_corpus: layout, content-matched pairs, split by source, shared compression history, seeding."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer import build_corpus as bc
from trainer import corpus_plan, corpus_store, generators

from images import textured_photo

NAMES = ["autogan_convt", "autogan_nearest"]


@pytest.fixture(scope="module")
def reals(tmp_path_factory):
    root = tmp_path_factory.mktemp("reals")
    for i in range(6):
        folder = root / ("a" if i < 3 else "b")
        folder.mkdir(exist_ok=True)
        textured_photo(300 + 17 * i, 280 + 5 * i, i).save(folder / f"img{i}.jpg", quality=90)
    textured_photo(100, 300, 9).save(root / "a" / "small.jpg")  # too small for a 256 window
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    return root


def build(reals, out):
    torch.set_num_threads(1)
    return bc.build(reals, out, seed=0, names=NAMES, val_fraction=0.5, autogan_steps=2, autogan_width=4,
                    log=lambda m: None)


@pytest.fixture(scope="module")
def corpus(reals, tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    stats = build(reals, out)
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    return out, stats, rows


def test_layout_and_pairing(corpus, reals):
    out, stats, rows = corpus
    assert len(rows) == stats["pairs"] == 6
    assert set(stats["skipped"]) == {"a/small.jpg", "b/broken.jpg"}
    assert sorted(r["source"] for r in rows) == [f"{'a' if i < 3 else 'b'}/img{i}.jpg" for i in range(6)]
    for r in rows:
        real, fake = Path(r["real_path"]), Path(r["fake_path"])
        assert real.parts[:3] == (r["split"], r["generator"], "0_real")
        assert fake.parts[:3] == (r["split"], r["generator"], "1_fake")
        assert real.name == fake.name and real.suffix == "." + r["format"]
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.glob("*/*/*/*"))
    assert on_disk == sorted([r["real_path"] for r in rows] + [r["fake_path"] for r in rows])
    assert stats["counts"]["train"]["autogan_convt"] + stats["counts"]["val"]["autogan_convt"] == 3
    assert sorted(p.name for p in (out / "generators").iterdir()) == [
        "autogan_convt-w4-adv0.02-seed0-steps2.json", "autogan_convt-w4-adv0.02-seed0-steps2.pt",
        "autogan_nearest-w4-adv0.02-seed0-steps2.json", "autogan_nearest-w4-adv0.02-seed0-steps2.pt"]
    assert stats["generators"]["autogan_convt"]["trained"] and stats["generators"]["autogan_convt"]["steps"] == 2


def test_real_is_an_unresized_grid_aligned_window_and_fake_matches_it(corpus, reals):
    out, _, rows = corpus
    for r in rows:
        top, left = int(r["window_top"]), int(r["window_left"])
        assert top % 16 == 0 and left % 16 == 0
        real = Image.open(out / r["real_path"])
        fake = Image.open(out / r["fake_path"])
        assert real.size == fake.size == (256, 256)
        real_px, fake_px = np.asarray(real.convert("RGB"), float), np.asarray(fake.convert("RGB"), float)
        if r["format"] == "png":  # lossless storage: the real is exactly the decoded camera window
            source = np.asarray(Image.open(reals / r["source"]).convert("RGB"))
            assert np.array_equal(real_px, source[top:top + 256, left:left + 256])
            # the fake is the generator's output on exactly this window, after one camera-like JPEG pass
            generator = generators.make(r["generator"], autogan_steps=2, autogan_width=4)
            info = generator.prepare([], out / "generators", 0)  # loads the weights the build saved
            assert not info["trained"] and info["steps"] == 2
            expected = corpus_store.jpeg_roundtrip(generator(source[top:top + 256, left:left + 256]), int(r["camera_quality"]))
            # Regenerating runs the generator's convolutions again, and oneDNN's kernels for some CPUs (AVX2-only
            # ones) do not round identically from run to run; the JPEG pass turns those last-bit differences into a
            # few levels on a few pixels. A different window, generator or quality would differ everywhere.
            difference = np.abs(fake_px - expected)
            assert (difference > 0).mean() < 0.02 and difference.max() <= 16, (difference.mean(), difference.max())
        assert not np.array_equal(real_px, fake_px)


def test_pair_shares_storage_format_and_quality(corpus):
    out, stats, rows = corpus
    for r in rows:
        real, fake = Image.open(out / r["real_path"]), Image.open(out / r["fake_path"])
        assert real.format == fake.format == {"png": "PNG", "jpg": "JPEG"}[r["format"]]
        if r["format"] == "jpg":
            assert 70 <= int(r["quality"]) <= 100
            assert real.quantization == fake.quantization  # same JPEG quality for both members
        else:
            assert r["quality"] == ""
        assert 75 <= int(r["camera_quality"]) <= 95
    assert sum(stats["formats"].values()) == len(rows)
    assert set(stats["formats"]) == {"png", "jpg"}  # this seed exercises both storage paths


def test_val_split_is_by_source_and_seeded(corpus):
    _, _, rows = corpus
    for r in rows:
        assert r["split"] == corpus_plan.split_of(0, r["source"], 0.5)
    names = [f"cats/{i}.jpg" for i in range(4000)]
    val = sum(corpus_plan.split_of(0, n, 0.1) == "val" for n in names)
    assert 300 < val < 500
    assert [corpus_plan.split_of(0, n, 0.1) for n in names[:50]] == [corpus_plan.split_of(0, n, 0.1) for n in names[:50]]
    assert [corpus_plan.split_of(0, n, 0.5) for n in names[:50]] != [corpus_plan.split_of(1, n, 0.5) for n in names[:50]]


def test_plan_windows_fit_and_generators_are_balanced():
    for size in [(256, 256), (481, 321), (500, 375), (321, 481), (270, 1000)]:
        for s in range(20):
            p = corpus_plan.plan_for(s, f"x/{s}.jpg", size, 0.1)
            assert 0 <= p.left <= size[0] - 256 and 0 <= p.top <= size[1] - 256
            assert p.left % 16 == 0 and p.top % 16 == 0
            assert (p.format == "png") == (p.quality is None)
    plans = [corpus_plan.plan_for(0, f"s{i}.jpg", (300, 300), 0.2) for i in range(101)]
    assignment = corpus_plan.assign_generators(plans, {g: [g] for g in ("g1", "g2", "g3")}, seed=0)
    for split in ("train", "val"):
        shares = [sum(assignment[p.source] == g for p in plans if p.split == split) for g in ("g1", "g2", "g3")]
        assert max(shares) - min(shares) <= 1


def test_build_is_reproducible(corpus, reals, tmp_path):
    out, _, rows = corpus
    build(reals, tmp_path)
    again = list(csv.DictReader(open(tmp_path / "manifest.csv")))
    drop = lambda rs: [{k: v for k, v in r.items() if k != "generate_s"} for r in rs]  # noqa: E731
    assert drop(again) == drop(rows)
    for r in rows:
        assert (tmp_path / r["fake_path"]).read_bytes() == (out / r["fake_path"]).read_bytes()


def test_a_cut_short_build_resumes_to_the_same_corpus_generating_only_what_is_missing(corpus, reals, tmp_path, monkeypatch):
    out, stats, rows = corpus
    build(reals, tmp_path)
    manifest = (tmp_path / "manifest.csv").read_text().splitlines(keepends=True)
    (tmp_path / "manifest.csv").write_text("".join(manifest[:4]))  # killed after 3 pairs had landed
    (tmp_path / rows[1]["fake_path"]).unlink()  # ...and one of them lost its fake
    stale = tmp_path / rows[4]["real_path"]
    stale.with_name(f".{stale.name}.0badc0de.part").write_bytes(b"half an image")  # as write_atomically names it
    calls = []
    original = generators.AutoGAN.__call__
    monkeypatch.setattr(generators.AutoGAN, "__call__", lambda self, w: calls.append(1) or original(self, w))
    again = build(reals, tmp_path)
    assert len(calls) == len(rows) - 2  # the two complete pairs were kept, not regenerated
    resumed = list(csv.DictReader(open(tmp_path / "manifest.csv")))
    drop = lambda rs: [{k: v for k, v in r.items() if k != "generate_s"} for r in rs]  # noqa: E731
    assert drop(resumed) == drop(rows) and again["counts"] == stats["counts"]
    assert again["sharpness"] == stats["sharpness"]
    for r in rows:
        assert (tmp_path / r["fake_path"]).read_bytes() == (out / r["fake_path"]).read_bytes()
    assert not list(tmp_path.glob("*/*/*/.*.part"))


def test_a_folder_built_with_other_arguments_is_refused(corpus, reals):
    out, _, _ = corpus
    with pytest.raises(RuntimeError, match="other arguments"):
        bc.build(reals, out, seed=1, names=NAMES, val_fraction=0.5, autogan_steps=2, autogan_width=4, log=lambda m: None)


def test_unknown_generator_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown generator"):
        generators.make("stylegan9")


def test_realesrgan_compact_gives_a_same_size_fake(ncnn_libraries):
    g = generators.make("realesr_animevideov3_x2")
    g.prepare([], Path("."), 0)
    window = np.asarray(textured_photo(256, 256, 3))
    fake = g(window)
    assert fake.shape == window.shape and fake.dtype == np.uint8
    assert np.abs(fake.astype(float) - window).mean() < 40


def test_cli_rejects_a_missing_reals_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        bc.main(["--reals", str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
    assert e.value.code == 2 and "is not a folder" in capsys.readouterr().err


def test_a_failing_generator_skips_its_sources_instead_of_crashing(reals, tmp_path, monkeypatch):
    def broken(self, window):
        raise RuntimeError("boom")

    monkeypatch.setattr(generators.AutoGAN, "__call__", broken)
    stats = build(reals, tmp_path)
    assert stats["pairs"] == 0 and list(csv.DictReader(open(tmp_path / "manifest.csv"))) == []
    assert sum("failed: RuntimeError: boom" in why for why in stats["skipped"].values()) == 6
    assert not list(tmp_path.glob("*/*/*/*"))


def test_list_sources_prints_the_files_whose_windows_a_build_pairs(reals, tmp_path, capsys):
    assert bc.main(["--reals", str(reals), "--seed", "0", "--limit", "6", "--calibration-fraction", "0.3",
                    "--list-sources"]) == 0
    listed = capsys.readouterr().out.split()
    bc.build(reals, tmp_path, seed=0, limit=6, names=NAMES, val_fraction=0.1, autogan_steps=2, autogan_width=4,
             log=lambda m: None, calibration_fraction=0.3)
    paired = {(reals / r["source"]).as_posix() for r in csv.DictReader(open(tmp_path / "manifest.csv"))}
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert {Path(p).as_posix() for p in listed} == paired and len(listed) == len(paired) > 0
    assert stats["skipped"] or stats["calibration_photos"]  # sources taken but not paired are not listed
    with pytest.raises(SystemExit):
        bc.main(["--reals", str(reals)])  # without --list-sources a build needs --out
    assert "--out is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bc.main(["--reals", str(tmp_path / "missing"), "--list-sources"])  # not an empty list and exit 0
    assert "missing is not a folder" in capsys.readouterr().err
