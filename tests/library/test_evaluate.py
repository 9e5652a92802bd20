import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import accuracy_score, average_precision_score

from ipdscan.decode import decode
from ipdscan.labelled import DatasetError, find_generators
from ipdscan.eval_report import EvalReport, plot_robustness, to_markdown, write_report
from ipdscan.evaluate import evaluate
from ipdscan.metrics import Row, metrics
from ipdscan.perturbations import Perturbation, parse_perturbations
from ipdscan.model import IPDConfig, IPDNet
from ipdscan.preprocess import Preprocessing, crop
from ipdscan.score import load_detector
from ipdscan.weights import save_checkpoint

SMALL = Preprocessing(pad=16, crop=16, size=16)


def put(folder: Path, n: int, seed: int, size: int = 20) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    """Overrides conftest's detector here: a 16-pixel model, so evaluation of many images stays fast."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "small.pt"
    save_checkpoint(path, IPDNet(IPDConfig("layer2", input_size=16)), SMALL, name="small", provenance={})
    return load_detector(path, "cpu", "fp32")  # bf16 kernels round differently by batch size; fp32 does not


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("data")
    cnnspot = base / "cnnspot"
    for k, cls in enumerate(["car", "cat"]):  # ProGAN-style: classes pooled into one generator
        put(cnnspot / "progan" / cls / "0_real", 3, seed=10 + k)
        put(cnnspot / "progan" / cls / "1_fake", 3, seed=20 + k)
    put(cnnspot / "biggan" / "1_fake", 4, seed=30)
    put(cnnspot / "biggan" / "0_real", 2, seed=31)
    (cnnspot / "biggan" / "1_fake" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    genimage = base / "genimage"
    inner = genimage / "sdv14" / "imagenet_ai_0419_sdv4"
    put(inner / "train" / "ai", 5, seed=40)  # train and val side by side: evaluation reads val
    put(inner / "train" / "nature", 5, seed=41)
    put(inner / "val" / "ai", 3, seed=42)
    put(inner / "val" / "nature", 4, seed=43)
    return [cnnspot, genimage]


def test_metrics_equal_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.25), 0, 1)
    m = metrics(y, s)
    assert m["ap"] == average_precision_score(y, s)
    assert m["acc"] == accuracy_score(y, s > 0.5)
    assert m["r_acc"] == accuracy_score(y[y == 0], s[y == 0] > 0.5)
    assert m["f_acc"] == accuracy_score(y[y == 1], s[y == 1] > 0.5)
    assert (m["n_real"], m["n_fake"]) == ((y == 0).sum(), (y == 1).sum())
    assert metrics([0, 1, 1], [0.5, 0.5, 0.51])["acc"] == pytest.approx(2 / 3)  # 0.5 itself counts as real


def test_metrics_without_one_class_leave_ap_undefined():
    only_fake = metrics([1, 1, 1], [0.9, 0.2, 0.7])
    assert only_fake["ap"] is None and only_fake["r_acc"] is None and only_fake["f_acc"] == pytest.approx(2 / 3)
    assert metrics([], [])["acc"] is None


def test_find_generators_pools_classes_and_prefers_val(roots):
    sets = find_generators(roots)
    assert [(s.name, s.group, len(s.real_paths), len(s.fake_paths)) for s in sets] == [
        ("biggan", "cnnspot", 2, 5), ("progan", "cnnspot", 6, 6), ("sdv14", "genimage", 4, 3)]
    assert all("/val/" in p for p in sets[2].real_paths + sets[2].fake_paths)
    with pytest.raises(DatasetError, match="no labelled folders"):
        find_generators([roots[0] / "progan" / "car" / "0_real"])


def read_scores(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_evaluate_matches_scikit_learn_per_generator_and_scores_like_scan(roots, detector, tmp_path):
    report = evaluate(roots, detector, batch_size=4, workers=0, scores_out=tmp_path / "scores.csv")
    rows = read_scores(tmp_path / "scores.csv")
    assert len(rows) == 2 + 5 + 12 + 7 and {r["perturbation"] for r in rows} == {"none"}
    broken = [r for r in rows if r["path"].endswith("broken.png")]
    assert broken[0]["score"] == "" and broken[0]["error"]

    for row in report.rows:
        mine = [r for r in rows if r["generator"] == row.generator and r["score"]]
        y, s = np.array([int(r["label"]) for r in mine]), np.array([float(r["score"]) for r in mine])
        assert row.ap == pytest.approx(average_precision_score(y, s), abs=1e-6)
        assert row.acc == pytest.approx(accuracy_score(y, s > 0.5))
    assert [r.n_unreadable for r in report.rows] == [1, 0, 0]
    assert [u.path for u in report.unreadable] == [broken[0]["path"]]

    # The scan's path: decode, centre crop, Detector.score.
    first = rows[0]
    expected = detector.score(crop(decode(Path(first["path"]).read_bytes()).pixels, SMALL)[None])[0]
    assert float(first["score"]) == pytest.approx(float(expected), abs=1e-6)

    table = report.table()
    assert [r.generator for r in table] == ["biggan", "progan", "sdv14", "mean"]
    assert table[-1].ap == pytest.approx(np.mean([r.ap for r in report.rows]))
    assert (table[-1].n_real, table[-1].n_fake, table[-1].n_unreadable) == (12, 13, 1)  # scored images only
    grouped = report.table(group=True)
    assert [(r.generator, r.group) for r in grouped] == [
        ("biggan", "cnnspot"), ("progan", "cnnspot"), ("sdv14", "genimage"),
        ("mean", "cnnspot"), ("mean", "genimage"), ("mean", "")]
    assert grouped[3].acc == pytest.approx((report.rows[0].acc + report.rows[1].acc) / 2)


def test_at_threshold_rereads_the_scores_as_a_new_evaluation_would(roots, detector):
    report = evaluate(roots, detector, batch_size=8, workers=0)
    threshold = float(np.median([s for _, scores in report.samples for s in scores]))  # splits the scores
    again = evaluate(roots, detector, batch_size=8, workers=0, threshold=threshold)
    assert report.at_threshold(threshold).rows == again.rows
    assert report.at_threshold(threshold).rows != report.rows  # accuracies moved, AP did not
    assert [r.ap for r in report.at_threshold(threshold).rows] == [r.ap for r in report.rows]
    with pytest.raises(ValueError, match="does not hold its scores"):
        EvalReport(report.rows, report.detector).at_threshold(threshold)


def test_perturbed_runs_and_report_files(roots, detector, tmp_path):
    perturbations = parse_perturbations(["jpeg=90,50", "blur=2"])
    report = evaluate(roots, detector, batch_size=8, workers=0, perturbations=perturbations,
                      scores_out=tmp_path / "scores.csv")
    assert [r.perturbation for r in report.rows] == ["none"] * 3 + ["jpeg=90"] * 3 + ["jpeg=50"] * 3 + ["blur=2"] * 3
    scores = read_scores(tmp_path / "scores.csv")
    clean = {r["path"]: r["score"] for r in scores if r["perturbation"] == "none"}
    blurred = {r["path"]: r["score"] for r in scores if r["perturbation"] == "blur=2"}
    assert sum(clean[p] != blurred[p] for p in clean) > len(clean) // 2  # the perturbation reached the model

    write_report(report, tmp_path / "t.md")
    write_report(report, tmp_path / "t.csv", group=True)
    write_report(report, tmp_path / "t.json")
    markdown = (tmp_path / "t.md").read_text()
    assert markdown.count("**mean**") == 4 and "| jpeg=50 | progan |" in markdown
    with (tmp_path / "t.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 4 * (3 + 2 + 1)
    assert float(table[0]["ap"]) == pytest.approx(report.rows[0].ap)
    payload = json.loads((tmp_path / "t.json").read_text())
    assert payload["detector"]["name"] == "small" and len(payload["rows"]) == 4 * 4
    with pytest.raises(ValueError, match=".md, .csv or .json"):
        write_report(report, tmp_path / "t.txt")

    plot_robustness(report, tmp_path / "robustness.png")
    assert Image.open(tmp_path / "robustness.png").size[0] > 600  # two panels: jpeg and blur


def test_markdown_shows_undefined_metrics_as_dashes():
    report = EvalReport([Row("onlyfake", "g", "none", None, 0.5, None, 0.5, 0, 4)], {"name": "x"})
    lines = to_markdown(report).splitlines()
    assert lines[2] == "| onlyfake | - | 50.0 | - | 50.0 | 0 | 4 | 0 |"
    assert len(lines) == 4  # header, rule, one generator, the mean


def test_parse_perturbations():
    assert parse_perturbations(["jpeg=95,75", "blur=1", "resize=0.5"]) == [
        Perturbation("jpeg", 95), Perturbation("jpeg", 75), Perturbation("blur", 1), Perturbation("resize", 0.5)]
    assert str(Perturbation("resize", 0.5)) == "resize=0.5"
    image = Image.new("RGB", (40, 30))
    assert Perturbation("resize", 0.5)(image).size == (20, 15)
    for bad in ["jpeg=101", "jpeg=50.5", "blur=-1", "resize=0", "sharpen=1", "jpeg", "jpeg=x"]:
        with pytest.raises(ValueError):
            parse_perturbations([bad])


def test_symlink_loops_are_walked_once(tmp_path):
    # a link back up inside a labelled folder, and one from a generator folder back to the root
    root = tmp_path / "data"
    put(root / "progan" / "0_real", 2, seed=1)
    put(root / "progan" / "1_fake", 2, seed=2)
    (root / "progan" / "0_real" / "again").symlink_to(root / "progan" / "0_real", target_is_directory=True)
    (root / "progan" / "up").symlink_to(root, target_is_directory=True)
    (sets,) = find_generators([root])
    assert sorted(Path(p).name for p in sets.real_paths) == ["0.png", "1.png"]
    assert sorted(Path(p).name for p in sets.fake_paths) == ["0.png", "1.png"]


def test_a_root_whose_labelled_folders_are_empty_is_an_error_not_an_empty_table(tmp_path, cli):
    (tmp_path / "data" / "gen" / "0_real").mkdir(parents=True)
    (tmp_path / "data" / "gen" / "1_fake").mkdir()
    (tmp_path / "data" / "gen" / "1_fake" / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match="labelled folders hold no image files"):
        find_generators([tmp_path / "data"])
    result = cli.invoke(["eval", str(tmp_path / "data"), "--device", "cpu"])
    assert result.exit_code == 2 and "hold no image files" in result.output


def test_scores_and_table_csv_cells_never_run_as_formulas(detector, tmp_path):
    root = tmp_path / "root"
    put(root / "=HYPERLINK(1)" / "0_real", 2, seed=1)  # a generator folder a spreadsheet would run as a formula
    put(root / "=HYPERLINK(1)" / "1_fake", 2, seed=2)
    report = evaluate([root], detector, batch_size=4, workers=0, scores_out=tmp_path / "scores.csv")
    assert report.rows[0].generator == "=HYPERLINK(1)"  # the report itself keeps the name exact
    assert {r["generator"] for r in read_scores(tmp_path / "scores.csv")} == {"'=HYPERLINK(1)"}
    write_report(report, tmp_path / "table.csv")
    with (tmp_path / "table.csv").open() as f:
        assert [r["generator"] for r in csv.DictReader(f)] == ["'=HYPERLINK(1)", "mean"]
