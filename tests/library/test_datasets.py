from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ipdscan.eval.labelled import DatasetError, Unreadable
from ipdscan.model.preprocess import Preprocessing
from ipdscan.train.augment import Augmentation
from ipdscan.train.data import EpochSampler, LabelledImages, collate, split_roots

SMALL = Preprocessing(pad=8, crop=8, size=8)


def put(folder: Path, *stems: str, value: int = 0, size: int = 12) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem in stems:
        path = folder / f"{stem}.png"
        Image.new("RGB", (size, size), (value, value, value)).save(path)
        paths.append(path)
    return paths


def labels_by_folder(samples) -> set[tuple[str, int]]:
    return {(Path(s.path).parent.name, s.label) for s in samples}


def test_cnnspot_layout_labels_by_name_in_any_creation_order(tmp_path):
    root = tmp_path / "cnnspot"
    # Fake folders created first, a real folder under a name that sorts after "1_fake", and distractors.
    put(root / "train" / "cat" / "1_fake", "a", "b")
    put(root / "train" / "cat" / "0_real", "c")
    put(root / "train" / "zz", "stray")  # not a labelled folder: ignored
    put(root / "train" / "zz_horse" / "1_fake", "d")
    put(root / "train" / "zz_horse" / "0_real", "e", "f")
    put(root / "val" / "cat" / "1_fake", "g")
    put(root / "val" / "cat" / "0_real", "h")
    put(root / "test" / "progan" / "cat" / "0_real", "never")  # test/ is for ipdscan eval, not training
    (root / "train" / "cat" / "0_real" / "notes.txt").write_text("not an image")

    split = split_roots([str(root)], val_split=0.5, seed=0)
    assert labels_by_folder(split.train) == {("1_fake", 1), ("0_real", 0)}
    assert sorted(Path(s.path).stem for s in split.train) == ["a", "b", "c", "d", "e", "f"]
    assert sorted(Path(s.path).stem for s in split.val) == ["g", "h"]  # val/ folders win over val_split
    assert {s.generator for s in split.train} == {"cat", "zz_horse"}
    assert split.summary["train"]["generators"]["zz_horse"] == {"real": 2, "fake": 1}
    assert split.summary["val_source"] == {str(root): "val folders"}


def test_genimage_layout_with_inner_imagenet_folder(tmp_path):
    root = tmp_path / "genimage"
    inner = root / "sdv14" / "imagenet_ai_0419_sdv4"
    put(inner / "train" / "nature", "n1", "n2")
    put(inner / "train" / "ai", "a1")
    put(inner / "val" / "ai", "a2")
    put(inner / "val" / "nature", "n3")
    split = split_roots([str(root)], val_split=0.1, seed=0)
    assert labels_by_folder(split.train) == {("nature", 0), ("ai", 1)}
    assert Counter(s.label for s in split.train) == {0: 2, 1: 1}
    assert labels_by_folder(split.val) == {("nature", 0), ("ai", 1)}
    assert {s.generator for s in split.train + split.val} == {"sdv14"}


def test_flat_root_val_split_is_deterministic_and_keeps_pairs_together(tmp_path):
    root = tmp_path / "flat"
    stems = [f"img{i:03d}" for i in range(200)]
    put(root / "1_fake", *stems)
    put(root / "0_real", *stems)
    first = split_roots([str(root)], val_split=0.2, seed=1)
    again = split_roots([str(root)], val_split=0.2, seed=1)
    other = split_roots([str(root)], val_split=0.2, seed=2)
    assert first.val == again.val and first.train == again.train
    assert first.val != other.val
    assert 0.12 < len(first.val) / 400 < 0.28
    held = Counter(Path(s.path).stem for s in first.val)
    assert set(held.values()) == {2}  # a real and its fake go to the same side
    assert not {s.path for s in first.val} & {s.path for s in first.train}
    assert {s.generator for s in first.train} == {"flat"}  # a root holding 0_real/1_fake is named after itself
    assert split_roots([str(root)], val_split=0, seed=1).val == []


def test_root_without_labelled_folders_is_a_clear_error(tmp_path):
    put(tmp_path / "photos" / "holiday", "x")
    with pytest.raises(DatasetError, match="no labelled folders.*0_real,1_fake"):
        split_roots([str(tmp_path / "photos")], 0.1, 0)
    put(tmp_path / "onlyreal" / "0_real", "x")
    with pytest.raises(DatasetError, match="real and fake"):
        split_roots([str(tmp_path / "onlyreal")], 0, 0)
    with pytest.raises(DatasetError, match="not a directory"):
        split_roots([str(tmp_path / "missing")], 0, 0)


def test_unreadable_files_become_markers_that_collate_drops(tmp_path):
    root = tmp_path / "d"
    put(root / "0_real", "ok", value=10)
    put(root / "1_fake", "ok", value=200)
    (root / "1_fake" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    split = split_roots([str(root)], 0, 0)
    dataset = LabelledImages(split.train, SMALL)
    items = [dataset[i] for i in range(len(dataset))]
    assert sum(isinstance(item, Unreadable) for item in items) == 1
    batch = collate(items)
    assert batch.crops.shape == (2, 3, 8, 8) and batch.crops.dtype == torch.uint8
    assert sorted(batch.labels.tolist()) == [0.0, 1.0]
    assert [Path(u.path).name for u in batch.unreadable] == ["broken.png"]


def test_training_views_depend_only_on_seed_epoch_and_index(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "d" / "0_real"
    folder.mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / "x.png")
    put(tmp_path / "d" / "1_fake", "y")
    samples = split_roots([str(tmp_path / "d")], 0, 0).train
    make = lambda seed: LabelledImages(samples, SMALL, Augmentation(), seed=seed)  # noqa: E731
    index = next(i for i, s in enumerate(samples) if s.label == 0)
    views = [make(5)[(index, epoch)][0] for epoch in range(6)]
    assert torch.equal(make(5)[(index, 3)][0], views[3])  # a fresh dataset, the same view
    assert len({v.numpy().tobytes() for v in views}) > 1  # epochs differ
    other_seed = [make(6)[(index, epoch)][0] for epoch in range(6)]
    assert any(not torch.equal(a, b) for a, b in zip(views, other_seed))


def test_epoch_sampler_shards_shuffles_and_resumes_mid_epoch():
    data = list(range(10))
    sampler = EpochSampler(data, num_replicas=1, rank=0, seed=7)
    sampler.set_epoch(0)
    epoch0 = list(sampler)
    assert sorted(i for i, _ in epoch0) == data and {e for _, e in epoch0} == {0}
    sampler.set_epoch(1)
    assert [i for i, _ in sampler] != [i for i, _ in epoch0]
    sampler.set_epoch(0)
    sampler.skip = 4
    assert list(sampler) == epoch0[4:] and len(sampler) == 6
    ranks = [EpochSampler(data, num_replicas=2, rank=r, seed=7) for r in (0, 1)]
    shards = [[i for i, _ in s] for s in ranks]
    assert len(shards[0]) == len(shards[1]) == 5 and sorted(shards[0] + shards[1]) == data


@pytest.mark.parametrize("kind", ["orientation_jpeg", "png16", "png16_rgb", "rgba", "palette_transparency",
                                  "cmyk_jpeg", "webp", "gif_animated", "tiff_float"])
def test_a_training_sample_is_the_scans_preprocessed_tensor_for_the_same_file(tmp_path, kind):
    """Training decodes as a scan does: a rotated phone JPEG, a 16-bit PNG, alpha, CMYK... give the same crop."""
    from ipdscan.scanning.cpu_stage import decode_on_cpu

    from images import KINDS, make_image

    (tmp_path / "data" / "0_real").mkdir(parents=True)
    path = make_image(tmp_path / "data" / "0_real" / KINDS[kind][0], kind)
    put(tmp_path / "data" / "1_fake", "other")
    prep = Preprocessing()
    scanned = decode_on_cpu(str(path), path.read_bytes(), {}, prep, 100_000_000, 0).crops[0]
    samples = split_roots([str(tmp_path / "data")], 0, 0).train
    (trained, label), = [LabelledImages([s], prep)[0] for s in samples if s.label == 0]
    assert label == 0 and torch.equal(trained, torch.from_numpy(scanned))


def test_symlink_loops_do_not_repeat_training_images(tmp_path):
    root = tmp_path / "cnnspot"
    put(root / "train" / "cat" / "0_real", "r")
    put(root / "train" / "cat" / "1_fake", "f")
    (root / "train" / "cat" / "1_fake" / "again").symlink_to(root / "train" / "cat" / "1_fake", target_is_directory=True)
    (root / "train" / "cat" / "up").symlink_to(root, target_is_directory=True)
    put(root / "val" / "cat" / "0_real", "vr")
    put(root / "val" / "cat" / "1_fake", "vf")
    split = split_roots([str(root)], val_split=0.5, seed=0)
    assert sorted(Path(s.path).stem for s in split.train) == ["f", "r"]


def test_links_inside_labelled_folders_never_count_a_file_twice(tmp_path):
    """Issue 21, item 9: with 0_real/up -> .., each fake was counted as real and as fake (9 real + 5 fake from 4 + 5
    images), and training leaked those duplicates into val."""
    from ipdscan.eval.labelled import find_generators
    gen = tmp_path / "data" / "gen"
    put(gen / "0_real", "r1", "r2", "r3", "r4")
    put(gen / "1_fake", "f1", "f2", "f3", "f4", "f5", value=200)
    (gen / "0_real" / "up").symlink_to("..", target_is_directory=True)
    (gen / "0_real" / "fakes").symlink_to("../1_fake", target_is_directory=True)
    (gen / "0_real" / "f1-again.png").symlink_to("../1_fake/f1.png")  # a fake, whatever folder links to it
    (gen / "1_fake" / "f2-hard.png").hardlink_to(gen / "1_fake" / "f2.png")
    (chosen,) = find_generators([tmp_path / "data"])
    assert sorted(Path(p).stem for p in chosen.real_paths) == ["r1", "r2", "r3", "r4"]
    assert sorted(Path(p).stem.removesuffix("-hard") for p in chosen.fake_paths) == ["f1", "f2", "f3", "f4", "f5"]
    split = split_roots([str(tmp_path / "data")], val_split=0.5, seed=0)
    assert Counter(s.label for s in split.train + split.val) == {0: 4, 1: 5}
    assert not {Path(s.path).resolve() for s in split.train} & {Path(s.path).resolve() for s in split.val}
