"""The pretrained trunk (ipdscan/model/efficientnet_lite.py), the feature cache and the probe (trainer/feature_cache.py,
trainer/probe.py): issue 31's frozen-feature path."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ipdscan.model.efficientnet_lite as lite
from trainer import feature_cache, probe

from images import natural

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ESPRESSO, MISSILE = 967, 657  # ImageNet classes


@pytest.fixture(scope="module")
def lite0():
    return lite.load_lite("lite0")


@pytest.mark.parametrize("photo_name, label", [("real-coffee.jpg", ESPRESSO), ("real-rocket.jpg", MISSILE)])
def test_the_port_classifies_photos_as_imagenet_does(lite0, photo_name, label):
    # Wrong padding, input scaling or block layout would still run; only the right port names these photos.
    pixels = np.asarray(Image.open(EXAMPLES / photo_name).convert("RGB").resize((224, 224)))
    x = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        assert lite0(x).argmax().item() == label


def test_stages_and_their_strides(lite0):
    with torch.inference_mode():
        stages = lite0.forward_features(torch.rand(1, 3, 224, 224))
    assert [s.shape[1] for s in stages] == lite0.stage_channels == [16, 24, 40, 80, 112, 192, 320]
    assert [224 // s.shape[-1] for s in stages] == [2, 4, 8, 16, 16, 32, 32]


def test_a_file_that_is_not_the_pinned_one_is_refused(monkeypatch):
    monkeypatch.setitem(lite.PRETRAINED, "lite0", replace(lite.PRETRAINED["lite0"], sha256="0" * 64))
    with pytest.raises(ValueError, match="sha256"):
        lite.load_lite("lite0")


def test_the_control_is_the_same_architecture_freshly_initialised(lite0):
    control = lite.load_lite("lite0", pretrained=False, seed=1)
    again = lite.load_lite("lite0", pretrained=False, seed=1)
    assert not torch.equal(control._conv_stem.weight, lite0._conv_stem.weight)
    assert torch.equal(control._conv_stem.weight, again._conv_stem.weight)


def write_pair(root: Path, split: str, generator: str, name: str, seed: int) -> None:
    for label, shift in (("0_real", 0), ("1_fake", 40)):
        folder = root / split / generator / label
        folder.mkdir(parents=True, exist_ok=True)
        image = natural(300, 260, seed=seed)
        if shift:  # the "fake": the same content, brighter
            image = Image.fromarray(np.clip(np.asarray(image).astype(int) + shift, 0, 255).astype(np.uint8))
        image.save(folder / f"{name}.png")


def test_pair_synced_views_share_window_and_processing_and_the_rest_do_not(tmp_path):
    write_pair(tmp_path, "train", "gen", "a", seed=3)
    real, fake = sorted(feature_cache.corpus_entries(tmp_path), key=lambda e: e.label)
    always = feature_cache.Processing(resize_p=1, blur_p=1, jpeg_p=1)
    real_views = feature_cache.views_of(real, "sha-real", "train", 4, always)
    fake_views = feature_cache.views_of(fake, "sha-fake", "train", 4, always)
    assert real_views.shape == (4, 224, 224, 3)
    difference = np.abs(real_views.astype(int) - fake_views.astype(int)).mean(axis=(1, 2, 3))
    # Synced views (0, 1) differ only by the fake's brightness shift (JPEG-rounded); the own-seed views (2, 3) sit
    # at other windows, so they differ by far more.
    assert difference[:2].max() < 45 < difference[2:].min()


def test_the_cache_is_resumable_and_skips_unreadable_files(tmp_path):
    write_pair(tmp_path / "corpus", "train", "gen", "a", seed=1)
    write_pair(tmp_path / "corpus", "val", "gen", "b", seed=2)
    broken = tmp_path / "corpus" / "val" / "gen" / "0_real" / "c.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    entries = feature_cache.corpus_entries(tmp_path / "corpus")
    calls = []

    class Counting(feature_cache.Extractor):
        def features(self, views):
            calls.append(len(views))
            return np.tile(views.reshape(len(views), -1)[:, :8].astype(np.float16), 1)

    extractor = Counting(model=None, id="fake-extractor")
    located = feature_cache.cache_features(entries, extractor, tmp_path / "cache", "train", 2, log=lambda _: None)
    assert str(broken) not in located and len(located) == 4
    assert sum(calls) == 8 and all(np.load(path).shape == (2, 8) for path in located.values())
    calls.clear()
    again = feature_cache.cache_features(entries, extractor, tmp_path / "cache", "train", 2, log=lambda _: None)
    assert calls == [] and again == located
    blurrier = feature_cache.Processing(blur_p=0.5)  # other views: computed anew, never the default's reused
    other = feature_cache.cache_features(entries, extractor, tmp_path / "cache", "train", 2, log=lambda _: None,
                                         processing=blurrier)
    assert sum(calls) == 8 and set(other.values()).isdisjoint(located.values())


def test_the_probe_separates_what_the_features_separate_and_picks_c_on_val():
    rng = np.random.default_rng(0)

    def features(n):
        labels = rng.integers(0, 2, n)
        x = rng.normal(size=(n, 20)).astype(np.float32)
        x[:, 0] += 2 * labels
        return x, labels

    fitted = probe.fit(features(400), features(200), "test", log=lambda _: None)
    x, labels = features(400)
    scores = fitted.scores(x)
    assert fitted.regularisation in probe.REGULARISATION
    assert scores[labels == 1].mean() > 0.7 > 0.3 > scores[labels == 0].mean()


def test_shortcut_checks_catch_a_detector_that_reads_sharpness():
    from trainer.shortcuts import PROCESSING, shortcut_shifts

    def sharpness(images):  # "fake" = sharp: the processing-history shortcut the checks exist to catch
        return np.array([np.abs(np.diff(image.astype(float), axis=1)).mean() / 20 for image in images])

    images = [np.asarray(natural(96, 80, seed=seed)) for seed in range(6)]
    labels = [0, 0, 0, 1, 1, 1]
    shifts = shortcut_shifts(sharpness, images, labels)
    assert set(shifts) == {(name, kind) for name in PROCESSING for kind in ("real", "fake")}
    assert shifts[("blur sigma 0.5-1", "real")] < -0.05 and shifts[("blur sigma 0.5-1", "fake")] < -0.05
    assert all(value == 0 for value in shortcut_shifts(lambda batch: np.full(len(batch), 0.5), images, labels).values())


def test_the_probe_temperature_keeps_overconfident_scores_apart():
    # An over-fitted probe's logits (+-40 on overlapping classes) round to exactly 0 or 1 as float32 sigmoids.
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 400)
    logits = 40 * (rng.normal(size=400) + 0.8 * labels - 0.4)
    temperature = probe.fitted_temperature(logits, labels)
    assert temperature > 10
    scores = (1 / (1 + np.exp(-logits / temperature))).astype(np.float32)
    assert 0 < scores.min() and scores.max() < 1 and len(np.unique(scores)) == len(scores)
    assert probe.fitted_temperature(logits / 40, labels) < temperature / 10  # calibrated logits stay near 1


def write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header), *(",".join(map(str, row)) for row in rows)]) + "\n")
    return path


def test_the_ensemble_puts_members_on_the_calibration_scale_and_averages_them(tmp_path):
    from trainer import ensemble

    # Member a sees generator g1's traces, member b g2's; on different raw scales. Calibration: 40 real photos.
    rng = np.random.default_rng(0)
    label_rows, a_rows, b_rows = [], [], []
    for index in range(200):
        root, generator = ("calibration", "calibration") if index < 40 else ("dev", "g1" if index < 120 else "g2")
        label = 0 if index < 40 else index % 2
        path = str(tmp_path / f"{index}.png")
        label_rows.append((path, root, generator, label))
        a_rows.append((path, 1 / (1 + np.exp(-(rng.normal() + 3 * label * (generator == "g1"))))))
        b_rows.append((path, 1 / (1 + np.exp(-(0.1 * rng.normal() + 0.3 * label * (generator == "g2") - 2)))))
    labels = ensemble.read_labels(write_csv(tmp_path / "labels.csv", ["path", "root", "generator", "label"], label_rows))
    members = {"a": ensemble.read_scores(write_csv(tmp_path / "a.csv", ["path", "score"], a_rows)),
               "b": ensemble.read_scores(write_csv(tmp_path / "b.csv", ["input", "score"], b_rows))}
    paths, columns = ensemble.combine(labels, members)
    calibration = np.array([labels[p].root == "calibration" for p in paths])
    for name in ("a", "b"):  # one scale: the calibration photos' logits have mean 0 and deviation 1 for each member
        assert abs(columns[name][calibration].mean()) < 1e-6 and abs(columns[name][calibration].std() - 1) < 1e-6
    text = "\n".join(ensemble.report(labels, paths, columns, 0.05))
    mean_row = next(line for line in text.splitlines() if "**mean**" in line).split("|")
    a_auc, b_auc, ensemble_auc = (float(cell.split()[0]) for cell in mean_row[3:6])
    assert ensemble_auc > max(a_auc, b_auc)

    with pytest.raises(ValueError, match="needs a path"):
        ensemble.read_scores(write_csv(tmp_path / "bad.csv", ["file", "score"], a_rows))
    with pytest.raises(ValueError, match="calibration photos"):
        ensemble.combine(labels, {"a": {p: 0.5 for p in list(members["a"])[40:]}, "b": members["b"]})


@pytest.mark.slow  # a Lite0 trunk and an IPD-Net exported and run twice: ~20 s on 2 cores
def test_a_probe_and_its_ensemble_export_as_scannable_onnx(tmp_path, checkpoint):
    from ipdscan.model.onnx_backend import load_onnx_detector
    from ipdscan.model.weights import load_checkpoint
    from trainer import export_probe

    photos = tmp_path / "calibration"
    photos.mkdir()
    for seed in range(20):
        natural(180 + seed, 150, seed=seed).save(photos / f"{seed}.jpg", quality=90)
    dims = 2 * sum(lite.load_lite("lite0").stage_channels)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "probe.npz", mean=rng.normal(size=dims), scale=np.ones(dims), bias=0.1,
             weights=rng.normal(0, 0.01, dims), regularisation=0.03, temperature=2.0, threshold=0.61,
             about='{"extractor": "lite0-579344248a93-stagestats"}')
    alone, summary = export_probe.build(tmp_path / "probe.npz", [], [photos], 0.05, "probe-only", log=lambda _: None)
    assert summary["threshold"] == pytest.approx(0.61) and summary["max_difference"] <= 1e-3
    both, summary = export_probe.build(tmp_path / "probe.npz", [checkpoint], [photos], 0.1, "probe-and-ipdnet",
                                       log=lambda _: None)
    assert summary["flagged"] <= 2  # at most 10% of 20 calibration photos at the chosen threshold
    (tmp_path / "both.onnx").write_bytes(both)
    (tmp_path / "both.onnx.sha256").write_text(f"{summary['sha256']}  both.onnx\n")
    detector = load_onnx_detector(tmp_path / "both.onnx")
    assert (detector.name, detector.variant, detector.threshold) == ("probe-and-ipdnet", "ensemble", summary["threshold"])
    provenance = detector.metadata["provenance"]
    assert provenance["trunk"]["sha256"] == lite.PRETRAINED["lite0"].sha256
    assert provenance["checkpoints"][0]["sha256"] == load_checkpoint(checkpoint).sha256
    crops = export_probe.scan_crops([str(p) for p in sorted(photos.iterdir())], detector.preprocessing)
    scores = detector.score(crops)
    assert scores.shape == (20,) and 0 < scores.min() and scores.max() < 1
    assert alone != both
