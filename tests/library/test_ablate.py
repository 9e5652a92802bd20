"""trainer.ablate: one run on everything and one without each family, each scored on the dev set; resumable."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ipdscan.labelled import DatasetError
from ipdscan.weights import load_checkpoint
from trainer import ablate

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
        data = load_checkpoint(out / run / "run" / "best.pt").provenance["data"]
        assert set(data["train"]["generators"]) == set(data["val"]["generators"]) == generators
        assert f"## {run.replace('-', ' ')}" in table
    assert table.count("somegan") == 4 and (out / "ABLATION.md").read_text() == table


def test_finished_runs_are_not_trained_again(ablated, monkeypatch):
    root, dev, out, table = ablated
    monkeypatch.setattr(ablate, "train", lambda config: pytest.fail("a finished run was trained again"))
    assert ablate.ablate(root, [str(dev)], out, ARGS, log=lambda m: None) == table


def test_a_folder_that_is_not_a_corpus_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(DatasetError, match="no train/<generator>"):
        ablate.corpus_families(tmp_path)
    assert ablate.main([str(tmp_path), "--dev", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no train/<generator>" in capsys.readouterr().err
