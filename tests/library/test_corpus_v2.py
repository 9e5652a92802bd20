"""Corpus v2 in build_corpus: calibration photos kept whole, --holdout, the sd15 family (alone with
--generators none), TAEF2's share."""
import csv
from pathlib import Path

import pytest
import torch
from PIL import Image

from ipdscan.train.data import split_roots
from trainer import build_corpus as bc
from trainer import corpus_plan

from images import textured_photo


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2")
    reals, previews, holdout, out = root / "reals", root / "sd15", root / "dev", root / "corpus"
    for folder in (reals, previews, holdout):
        folder.mkdir()
    for i in range(16):
        textured_photo(300 + 8 * i, 272, i).save(reals / f"img{i}.jpg", quality=90)
    (holdout / "0_real").mkdir()
    (holdout / "0_real" / "copy.jpg").write_bytes((reals / "img0.jpg").read_bytes())  # an eval photo in the reals
    for i in range(3):
        textured_photo(1024, 1024, 40 + i).save(previews / f"grid{i}.webp", quality=70)
    torch.set_num_threads(1)
    stats = bc.build(reals, out, seed=0, names=["autogan_convt"], val_fraction=0.25, autogan_steps=2, autogan_width=4,
                     log=lambda m: None, calibration_fraction=0.2, holdout=[holdout], sd15_dir=previews, webp_sample=2)
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    return reals, out, stats, rows


@pytest.mark.slow
def test_calibration_photos_are_copied_whole_and_never_paired(built):
    reals, out, stats, rows = built
    calibration = sorted((out / "calibration").iterdir())
    assert stats["calibration_photos"] == len(calibration) > 0
    for path in calibration:
        assert path.read_bytes() == (reals / path.name).read_bytes()
        assert corpus_plan.split_of(0, path.name, 0.25, 0.2) == "calibration"
    paired = {r["source"] for r in rows}
    assert not paired & {p.name for p in calibration}


def test_training_on_the_corpus_root_never_sees_a_calibration_photo(built):
    _, out, _, _ = built
    split = split_roots([str(out)], val_split=0.1, seed=0)
    used = {Path(s.path).resolve() for s in split.train + split.val}
    assert used and not used & {p.resolve() for p in (out / "calibration").iterdir()}
    assert {s.generator for s in split.train + split.val} <= {"autogan_convt", "sd15"}


def test_holdout_files_never_enter_the_corpus(built):
    _, out, stats, rows = built
    assert stats["skipped"]["img0.jpg"].startswith("held out")
    assert "img0.jpg" not in {r["source"] for r in rows}
    assert not (out / "calibration" / "img0.jpg").exists()


def test_sd15_pairs_share_their_codec_history_and_split_by_grid(built):
    _, out, stats, rows = built
    sd = [r for r in rows if r["generator"] == "sd15"]
    primary = [r for r in rows if r["generator"] != "sd15"]
    for split in ("train", "val"):  # every photo gives one sd15 pair while its split's tiles last
        tiles = 4 * sum(corpus_plan.split_of(0, f"grid{i}.webp", 0.25) == split for i in range(3))
        photos = sum(r["split"] == split for r in primary)
        assert sum(r["split"] == split for r in sd) == min(tiles, photos)
    assert stats["generators"]["sd15"]["webp_qualities"] and stats["counts"]["train"]["sd15"] > 0
    for r in sd:
        grid = r["fake_source"].split("#")[0]
        assert corpus_plan.split_of(0, grid, 0.25) == r["split"]
        assert int(r["webp_quality"]) in stats["generators"]["sd15"]["webp_qualities"]
        real, fake = Image.open(out / r["real_path"]), Image.open(out / r["fake_path"])
        assert real.size == fake.size == (256, 256) and real.format == fake.format
    assert len({r["fake_source"] for r in sd}) == len(sd)  # no tile used twice
    assert set(stats["sharpness"]) == {"autogan_convt", "sd15"}


def test_shares_give_taef2_a_family_sized_turn():
    plans = [corpus_plan.plan_for(0, f"s{i}.jpg", (300, 300), 0.0) for i in range(80)]
    assignment = corpus_plan.assign_generators(plans, {g: [g] for g in ("a", "b", "taef2")}, 0, {"taef2": 2})
    counts = {g: sum(v == g for v in assignment.values()) for g in ("a", "b", "taef2")}
    assert counts == {"a": 20, "b": 20, "taef2": 40}


@pytest.mark.slow  # builds a second corpus (~4 s)
def test_generators_none_builds_the_same_sd15_pairs_alone(built, tmp_path):
    reals, out, _, rows = built
    alone = tmp_path / "sd15-only"
    stats = bc.build(reals, alone, seed=0, names=[], val_fraction=0.25, log=lambda m: None, calibration_fraction=0.2,
                     holdout=[out.parent / "dev"], sd15_dir=out.parent / "sd15", webp_sample=2)
    assert set(stats["counts"]["train"]) == {"sd15"}
    def sd15(table):
        return [{key: row[key] for key in ("source", "split", "real_path", "fake_path", "format", "quality", "fake_source")}
                              for row in table if row["generator"] == "sd15"]
    assert sd15(list(csv.DictReader(open(alone / "manifest.csv")))) == sd15(rows)
    for row in sd15(rows):  # the same pixels too
        assert (alone / row["fake_path"]).read_bytes() == (out / row["fake_path"]).read_bytes()


@pytest.mark.parametrize("generators", [["none"], ["none", "taef2"]])
def test_generators_none_stands_alone_and_needs_sd15_or_faces(generators, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        bc.main(["--reals", str(tmp_path), "--out", str(tmp_path / "out"), "--generators", *generators])
    assert exited.value.code == 2
    assert "--generators none stands alone and needs --sd15 or --faces" in capsys.readouterr().err
