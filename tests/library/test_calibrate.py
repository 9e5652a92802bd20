"""The calibrated threshold: chosen on held-out reals, carried and vouched for by the weights file, used by scan."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ipdscan.model.weights import WeightsError, load_checkpoint, save_checkpoint
from trainer.calibrate import calibrate, photos_to_score, threshold_for
from trainer.calibrate import main as calibrate_main

from checkpoints import make_checkpoint


def test_threshold_flags_at_most_the_allowed_share():
    rng = np.random.default_rng(0)
    for n in (20, 99, 100, 257):
        scores = rng.random(n).astype(np.float32)
        for share in (0.0, 0.05, 0.2):
            t = threshold_for(scores, share)
            flagged = (scores >= t).mean()
            assert flagged <= share + 1e-9
            # the lowest such threshold: one more image would be flagged just below it
            assert (scores >= np.nextafter(np.float32(t), np.float32(-1))).mean() > flagged or t == 0.0
    tied = np.array([0.9] * 10 + [0.1] * 90, np.float32)
    assert (tied >= threshold_for(tied, 0.05)).sum() == 0  # ties above the limit all stay unflagged


def test_calibration_travels_in_the_file_and_is_covered_by_its_hash(tmp_path):
    path = make_checkpoint(tmp_path / "a.pt")
    base = load_checkpoint(path)
    assert base.threshold == 0.5 and base.calibration == {}
    save_checkpoint(tmp_path / "c.pt", base.model, base.preprocessing, name=base.name, provenance=base.provenance,
                    calibration={"threshold": 0.73, "photos": 300})
    calibrated = load_checkpoint(tmp_path / "c.pt")
    assert calibrated.threshold == 0.73 and calibrated.calibration["photos"] == 300
    # editing the threshold without re-hashing the contents is refused, even with a matching sidecar
    payload = torch.load(tmp_path / "c.pt", weights_only=True)
    payload["calibration"]["threshold"] = 0.99
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(WeightsError, match="corrupt"):
        load_checkpoint(tmp_path / "edited.pt")
    with pytest.raises(WeightsError, match="threshold must be a number"):
        save_checkpoint(tmp_path / "bad.pt", base.model, base.preprocessing, name="x", calibration={"threshold": 2})


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibration") / "0_real"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (40 + i, 48, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


@pytest.mark.slow
def test_calibrate_writes_a_checkpoint_whose_threshold_flags_5_percent(tmp_path, photos, one_thread, cli):
    weights = make_checkpoint(tmp_path / "w.pt", seed=2)
    record = calibrate(weights, [photos], tmp_path / "cal.pt", max_flagged=0.05, device="cpu", precision="fp32")
    assert record["photos"] == 20 and record["flagged"] == 1  # floor(0.05 * 20) = 1
    checkpoint = load_checkpoint(tmp_path / "cal.pt")
    assert checkpoint.threshold == record["threshold"] and checkpoint.sha256 == record["sha256"]
    assert checkpoint.calibration["calibrated_from_sha256"] == load_checkpoint(weights).sha256

    # scan uses it by default and says so in the report header; --threshold still overrides
    out = tmp_path / "r.json"
    result = cli.invoke(["scan", str(photos), "--weights", str(tmp_path / "cal.pt"), "--device", "cpu",
                         "--workers", "0", "--precision", "fp32", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["header"]["threshold"] == record["threshold"] and report["header"]["threshold_source"] == "weights"
    assert sum(row["label"] == "ai" for row in report["items"]) == 1
    result = cli.invoke(["scan", str(photos / "p0.png"), "--weights", str(tmp_path / "cal.pt"), "--device", "cpu",
                         "--workers", "0", "--precision", "fp32", "--out", str(out), "--quiet", "--threshold", "0"])
    report = json.loads(out.read_text())
    assert report["header"]["threshold"] == 0 and report["header"]["threshold_source"] == "--threshold"
    assert [row["label"] for row in report["items"]] == ["ai"]


@pytest.mark.slow
def test_calibrate_refuses_too_few_photos(tmp_path, capsys):
    folder = tmp_path / "few"
    folder.mkdir()
    Image.new("RGB", (32, 32)).save(folder / "one.png")
    code = calibrate_main([str(make_checkpoint(tmp_path / "w.pt")), "--reals", str(folder), "--out", str(tmp_path / "o.pt"),
                           "--device", "cpu"])
    assert code == 2 and "at least 20" in capsys.readouterr().err and not (tmp_path / "o.pt").exists()


def test_exclude_leaves_out_photos_a_listed_file_has_the_bytes_of(tmp_path, photos, capsys):
    elsewhere = tmp_path / "trained-on"
    elsewhere.mkdir()
    for name in ("p3.png", "p7.png"):  # the same bytes under another name and folder
        (elsewhere / f"source-{name}").write_bytes((photos / name).read_bytes())
    listing = tmp_path / "v1-sources.txt"
    listing.write_text("".join(f"{p}\n" for p in sorted(elsewhere.iterdir())) + "\n")
    kept, excluded = photos_to_score([photos], [listing])
    assert excluded == 2 and len(kept) == 18 and not {"p3.png", "p7.png"} & {Path(p).name for p in kept}
    everything, none = photos_to_score([photos])
    assert none == 0 and len(everything) == 20

    listing.write_text(str(tmp_path / "gone.jpg") + "\n")  # a list made on another machine
    code = calibrate_main([str(make_checkpoint(tmp_path / "w.pt")), "--reals", str(photos), "--exclude", str(listing),
                           "--out", str(tmp_path / "o.pt"), "--device", "cpu"])
    assert code == 2 and "gone.jpg" in capsys.readouterr().err and not (tmp_path / "o.pt").exists()
