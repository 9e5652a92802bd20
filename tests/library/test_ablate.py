"""trainer.ablate: equal-budget runs (everything, without each family, with another corpus added), each scored on
the dev set by its last checkpoint; resumable."""
import contextlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ipdscan.eval.eval_report import percent
from ipdscan.eval.labelled import DatasetError
from ipdscan.model.detector import load_detector
from ipdscan.model.weights import load_checkpoint
from trainer import ablate, calibrate

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]  # trains four small runs


def write_pairs(folder: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for label in ("0_real", "1_fake"):
        (folder / label).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / label / f"{i}.png")


ARGS = ["--max-steps", "1", "--batch-size", "4", "--workers", "0"]


@pytest.fixture(scope="module")
def ablated(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("ablation")
    root = tmp_path / "corpus"
    for split, n in (("train", 4), ("val", 2)):
        for k, generator in enumerate(("autogan_convt", "autogan_nearest", "taef2", "sd15")):
            write_pairs(root / split / generator, n, seed=10 * k + n)
    write_pairs(tmp_path / "dev" / "somegan", 3, seed=99)
    table = ablate.ablate(root, [str(tmp_path / "dev")], tmp_path / "out", ARGS, log=lambda m: None)
    return root, tmp_path / "dev", tmp_path / "out", table


def test_each_run_leaves_out_one_family_in_train_and_val_and_is_scored_on_dev(ablated):
    root, dev, out, table = ablated
    assert ablate.corpus_families(root) == {"autogan": ["autogan_convt", "autogan_nearest"], "sd15": ["sd15"],
                                            "taef2": ["taef2"]}
    expected = {"all": {"autogan_convt", "autogan_nearest", "taef2", "sd15"},
                "without-autogan": {"taef2", "sd15"}, "without-sd15": {"autogan_convt", "autogan_nearest", "taef2"},
                "without-taef2": {"autogan_convt", "autogan_nearest", "sd15"}}
    for run, generators in expected.items():
        data = load_checkpoint(out / run / "run" / "last.pt").provenance["data"]
        assert set(data["train"]["generators"]) == set(data["val"]["generators"]) == generators
        assert f"## {run} (1 steps)" in table
    summary = table[table.index("| run |"):table.index("## all")].strip().splitlines()
    assert summary[0] == "| run | somegan | mean dev |" and [line.split(" | ")[0] for line in summary[2:]] == \
        [f"| {run}" for run in expected]
    assert table.count("| somegan |") == 5 and (out / "ABLATION.md").read_text() == table


def test_finished_runs_are_scored_again_without_training(ablated):
    root, dev, out, table = ablated
    before = {run: load_checkpoint(run / "run" / "last.pt").sha256 for run in out.iterdir() if run.is_dir()}
    assert ablate.ablate(root, [str(dev)], out, ARGS, log=lambda m: None) == table
    assert {run: load_checkpoint(run / "run" / "last.pt").sha256 for run in out.iterdir() if run.is_dir()} == before


def test_calibration_gives_each_run_its_threshold_and_the_dev_reals_flagged_at_it(ablated, tmp_path):
    root, dev, finished, _ = ablated
    out = shutil.copytree(finished, tmp_path / "out", symlinks=True)  # rescored: no training
    write_pairs(tmp_path / "held-out", 20, seed=7)
    photos = sorted(str(path) for path in (tmp_path / "held-out" / "0_real").iterdir())
    table = ablate.ablate(root, [str(dev)], out, ARGS, runs=["all", "without-sd15"], calibration=photos,
                          max_flagged=0.1, log=lambda m: None)
    lines = table[table.index("| run |"):table.index("## all")].strip().splitlines()
    assert lines[0] == "| run | somegan | mean dev | threshold | reals flagged dev |"
    assert "at most 10% of 20 held-out real photos" in table
    for line in lines[2:]:
        run, *_, threshold, flagged = line.strip("| ").split(" | ")
        detector = load_detector(out / run / "run" / "last.pt", "cpu")
        expected = calibrate.threshold_for(calibrate.score_photos(detector, photos)[0], 0.1)
        assert threshold == f"{expected:.4f}"
        dev_reals = calibrate.score_photos(detector, [str(path) for path in (dev / "somegan" / "0_real").iterdir()])[0]
        assert flagged == percent(float((dev_reals > expected).mean()))


def test_a_run_cut_short_continues_to_the_budget(ablated, tmp_path):
    root, dev, _, _ = ablated
    ablate.ablate(root, [str(dev)], tmp_path, ARGS, runs=["without-sd15"], log=lambda m: None)
    table = ablate.ablate(root, [str(dev)], tmp_path, [*ARGS, "--max-steps", "2"], runs=["without-sd15"],
                          log=lambda m: None)
    assert "## without-sd15 (2 steps)" in table and "## all" not in table
    provenance = load_checkpoint(tmp_path / "without-sd15" / "run" / "last.pt").provenance
    assert provenance["step"] == 2 and provenance["config"]["resume"]


def test_added_corpora_join_every_chosen_run(ablated, tmp_path):
    root, dev, _, _ = ablated
    other = tmp_path / "other"
    for split in ("train", "val"):
        write_pairs(other / split / "extra_gen", 2, seed=5)
    ablate.ablate(root, [str(dev)], tmp_path / "out", ARGS, added=[other], runs=["without-taef2", "all"],
                  log=lambda m: None)
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["ABLATION.md", "all", "without-taef2"]
    data = load_checkpoint(tmp_path / "out" / "without-taef2" / "run" / "last.pt").provenance["data"]
    assert set(data["train"]["generators"]) == {"autogan_convt", "autogan_nearest", "sd15", "extra_gen"}
    assert ablate.plan_runs(root, [other], ["without-taef2+autogan"]) == {
        "without-taef2+autogan": [root / "sd15", other / "extra_gen"]}
    with pytest.raises(DatasetError, match="in .* already"):
        ablate.plan_runs(root, [root], None)


@pytest.mark.parametrize("argv, said", [
    (["--runs", "without-nothing", "--", *ARGS],
     "no run named without-nothing: runs are all and without-<family>[+<family>...], with families autogan, sd15, taef2"),
    (["--", "--batch-size", "4"], "give --max-steps"),
])
def test_bad_ablation_requests_are_one_line_and_exit_2(ablated, tmp_path, capsys, argv, said):
    root, dev, _, _ = ablated
    assert ablate.main([str(root), "--dev", str(dev), "--out", str(tmp_path / "o"), *argv]) == 2
    assert said in capsys.readouterr().err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("flags, said", [
    (["--calibration", "EMPTY"], "only 0 readable photos below"),
    (["--calibration", "EMPTY", "--exclude", "MISSING"], "MISSING"),
    (["--calibration", "EMPTY", "--max-flagged", "1.5"], "--max-flagged: must be in [0, 1), not 1.5"),
])
def test_a_bad_calibration_set_is_refused_before_any_run(ablated, tmp_path, capsys, flags, said):
    root, dev, _, _ = ablated
    (tmp_path / "empty").mkdir()
    flags = [str(tmp_path / "empty") if flag == "EMPTY" else str(tmp_path / "missing.txt") if flag == "MISSING"
             else flag for flag in flags]
    with pytest.raises(SystemExit) if "--max-flagged" in flags else contextlib.nullcontext():
        assert ablate.main([str(root), "--dev", str(dev), "--out", str(tmp_path / "o"), *flags, "--", *ARGS]) == 2
    assert said.replace("MISSING", "missing.txt") in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_a_folder_that_is_not_a_corpus_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(DatasetError, match="no train/<generator>"):
        ablate.corpus_families(tmp_path)
    assert ablate.main([str(tmp_path), "--dev", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no train/<generator>" in capsys.readouterr().err
