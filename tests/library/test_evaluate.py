import csv
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

from ipdscan.eval.eval_report import EvalReport, plot_robustness, to_markdown, write_report
from ipdscan.eval.evaluate import evaluate
from ipdscan.eval.labelled import DatasetError, find_generators
from ipdscan.eval.metrics import Row, bootstrap, bootstrap_interval, mean_interval, metrics, percentile_interval
from ipdscan.eval.perturbations import Perturbation, parse_perturbations
from ipdscan.model.detector import load_detector
from ipdscan.model.ipdnet import IPDConfig, IPDNet
from ipdscan.model.preprocess import Preprocessing, crop
from ipdscan.model.weights import save_checkpoint
from ipdscan.scanning.decode import decode

SMALL = Preprocessing(pad=16, crop=16, size=16)


def put(folder: Path, n: int, seed: int, size: int = 20) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    """A 16-pixel model, so evaluation of many images stays fast."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "small.pt"
    save_checkpoint(path, IPDNet(IPDConfig("layer2", input_size=16)), SMALL, name="small", provenance={})
    return path


@pytest.fixture(scope="module")
def detector(small_weights):
    """Overrides conftest's detector here: the 16-pixel model."""
    return load_detector(small_weights, "cpu", "fp32")  # bf16 kernels round differently by batch size; fp32 does not


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
    assert m["auc"] == roc_auc_score(y, s)
    assert m["acc"] == accuracy_score(y, s > 0.5)
    assert m["r_acc"] == accuracy_score(y[y == 0], s[y == 0] > 0.5)
    assert m["f_acc"] == accuracy_score(y[y == 1], s[y == 1] > 0.5)
    assert (m["n_real"], m["n_fake"]) == ((y == 0).sum(), (y == 1).sum())
    assert metrics([0, 1, 1], [0.5, 0.5, 0.51])["acc"] == pytest.approx(2 / 3)  # 0.5 itself counts as real


def test_metrics_without_one_class_leave_ap_undefined():
    only_fake = metrics([1, 1, 1], [0.9, 0.2, 0.7])
    assert only_fake["ap"] is None and only_fake["r_acc"] is None and only_fake["f_acc"] == pytest.approx(2 / 3)
    assert only_fake["auc"] is None and metrics([0, 0], [0.1, 0.7])["auc"] is None
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
        assert row.auc == pytest.approx(roc_auc_score(y, s), abs=1e-6)
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
    assert table[-1].auc == pytest.approx(np.mean([r.auc for r in report.rows]))
    assert (table[-1].n_real, table[-1].n_fake, table[-1].n_unreadable) == (12, 13, 1)  # scored images only
    grouped = report.table(group=True)
    assert [(r.generator, r.group) for r in grouped] == [
        ("biggan", "cnnspot"), ("progan", "cnnspot"), ("sdv14", "genimage"),
        ("mean", "cnnspot"), ("mean", "genimage"), ("mean", "")]
    assert grouped[3].acc == pytest.approx((report.rows[0].acc + report.rows[1].acc) / 2)
    assert grouped[3].auc == pytest.approx((report.rows[0].auc + report.rows[1].auc) / 2)
    assert grouped[4].auc == report.rows[2].auc


def test_at_threshold_rereads_the_scores_as_a_new_evaluation_would(roots, detector):
    report = evaluate(roots, detector, batch_size=8, workers=0)
    threshold = float(np.median([s for _, scores in report.samples for s in scores]))  # splits the scores
    again = evaluate(roots, detector, batch_size=8, workers=0, threshold=threshold)
    assert report.at_threshold(threshold).rows == again.rows
    assert report.at_threshold(threshold).rows != report.rows  # accuracies moved, AP did not
    assert [r.ap for r in report.at_threshold(threshold).rows] == [r.ap for r in report.rows]
    assert [r.auc for r in report.at_threshold(threshold).rows] == [r.auc for r in report.rows]
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
    assert float(table[0]["auc"]) == pytest.approx(report.rows[0].auc)
    assert table[0]["ap_low"] == table[0]["auc_high"] == ""  # no intervals asked for
    payload = json.loads((tmp_path / "t.json").read_text())
    assert payload["detector"]["name"] == "small" and len(payload["rows"]) == 4 * 4
    assert payload["rows"][0]["auc"] == pytest.approx(report.rows[0].auc) and payload["intervals"] is None
    assert "| AP | AUC | acc |" in markdown
    with pytest.raises(ValueError, match=".md, .csv or .json"):
        write_report(report, tmp_path / "t.txt")

    plot_robustness(report, tmp_path / "robustness.png")
    assert Image.open(tmp_path / "robustness.png").size[0] > 600  # two panels: jpeg and blur


def test_markdown_shows_undefined_metrics_as_dashes():
    report = EvalReport([Row("onlyfake", "g", "none", None, 0.5, None, 0.5, 0, 4)], {"name": "x"})
    lines = to_markdown(report).splitlines()
    assert lines[0] == "| generator | AP | AUC | acc | real acc | fake acc | real | fake | unreadable |"
    assert lines[2] == "| onlyfake | - | - | 50.0 | - | 50.0 | 0 | 4 | 0 |"
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


# --- bootstrap intervals --------------------------------------------------------------------------------------

def realistic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Half reals, half fakes, overlapping scores rounded to 0.01 (ties, as scores saved at low precision have)."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n // 2, int), np.ones(n - n // 2, int)]
    return y, np.clip(rng.normal(0.35 + 0.3 * y, 0.25), 0, 1).round(2)


def test_bootstrap_values_are_scikit_learns_on_resampled_images_drawn_with_replacement_per_class():
    # 3 reals and 2 fakes (a tie across the classes): every stratified resample, equally likely, enumerated
    y, s = np.array([0, 0, 0, 1, 1]), np.array([0.2, 0.6, 0.4, 0.6, 0.9])
    possible = {"ap": [], "auc": []}
    for reals in itertools.product(range(3), repeat=3):
        for fakes in itertools.product(range(3, 5), repeat=2):
            chosen = list(reals + fakes)
            possible["ap"].append(average_precision_score(y[chosen], s[chosen]))
            possible["auc"].append(roc_auc_score(y[chosen], s[chosen]))
    values = bootstrap(y, s, 20000, seed=1)
    for metric in ("ap", "auc"):
        assert np.isclose(values[metric][:, None], np.array(possible[metric])[None]).any(axis=1).all()
        assert values[metric].mean() == pytest.approx(np.mean(possible[metric]), abs=0.005)


def test_bootstrap_intervals_hold_the_estimate_narrow_with_more_images_and_repeat_by_seed():
    y, s = realistic(800)
    m = metrics(y, s)
    for metric in ("ap", "auc"):
        low, high = bootstrap_interval(y, s, metric, 1000, seed=0)
        assert low < m[metric] < high and high - low < 0.12
        assert bootstrap_interval(y, s, metric, 1000, seed=0) == (low, high)
        assert bootstrap_interval(y, s, metric, 1000, seed=1) != (low, high)
        widths = []
        for n in (100, 1600):
            low, high = bootstrap_interval(*realistic(n, seed=2), metric, 500, seed=0)
            widths.append(high - low)
        assert widths[1] < widths[0] / 2  # about 1/sqrt(16) as wide
    with pytest.raises(ValueError, match="ap and auc"):
        bootstrap_interval(y, s, "acc", 10)
    with pytest.raises(ValueError, match="at least 1"):
        bootstrap(y, s, 0)


def test_bootstrap_keeps_each_class_count_so_every_resample_has_both():
    # one real: a draw over all images would leave it out of about a third of the resamples (AUC undefined);
    # drawn from the reals, it is in every resample exactly once, and AUC counts the fakes above it
    y, s = np.r_[0, np.ones(50, int)], np.r_[0.5, np.linspace(0, 1, 50)]
    values = bootstrap(y, s, 2000, seed=0)
    assert np.isfinite(values["auc"]).all() and np.isfinite(values["ap"]).all()
    assert np.allclose(values["auc"] * 50, np.round(values["auc"] * 50))  # (fakes above the one real) / 50
    assert values["auc"].std() > 0
    one_each = bootstrap([0, 1], [0.3, 0.6], 100)  # nothing to vary: every resample is the data itself
    assert (one_each["ap"] == 1).all() and (one_each["auc"] == 1).all()
    assert bootstrap([1, 1, 1], [0.2, 0.5, 0.9], 100) is None and bootstrap_interval([0, 0], [0.1, 0.2], "auc", 10) is None


def test_report_intervals_per_generator_and_for_means_resampled_jointly(tmp_path):
    samples = [realistic(300, seed=3), realistic(200, seed=4), (np.ones(5, int), np.linspace(0, 1, 5))]
    rows = [Row(name, group, "none", **metrics(*sample)) for (name, group), sample
            in zip([("a", "g1"), ("b", "g1"), ("onlyfake", "g2")], samples)]
    report = EvalReport(rows, {"name": "x"}, [], samples).with_intervals(400, seed=7)
    assert report.with_intervals(400, seed=7) == report
    a, b, onlyfake = report.rows
    for row in (a, b):
        assert row.ap_low < row.ap < row.ap_high and row.auc_low < row.auc < row.auc_high
    assert (a.ap_low, a.ap_high) == bootstrap_interval(*samples[0], "ap", 400, seed=(7, 0))
    assert onlyfake.ap_low is onlyfake.auc_high is None  # one class: no AP, no AUC, no interval

    table = report.table(group=True)
    mean_g1, mean_g2, mean = table[3:]
    resampled = [bootstrap(*sample, 400, (7, i)) for i, sample in enumerate(samples)]
    assert (mean.auc_low, mean.auc_high) == mean_interval([values and values["auc"] for values in resampled])
    assert (mean.auc_low, mean.auc_high) == percentile_interval((resampled[0]["auc"] + resampled[1]["auc"]) / 2)
    assert (mean_g1.ap_low, mean_g1.ap_high) == (mean.ap_low, mean.ap_high)  # g2 defines no AP to average
    assert mean.ap_low < mean.ap < mean.ap_high and mean_g2.ap is mean_g2.ap_low is None
    # the mean of two generators resampled independently varies less than either
    assert mean.auc_high - mean.auc_low < min(a.auc_high - a.auc_low, b.auc_high - b.auc_low)
    assert report.at_threshold(0.3).rows[0].ap_low == a.ap_low  # intervals do not depend on the threshold

    lines = to_markdown(report, group=True).splitlines()
    assert lines[2].startswith(f"| a | g1 | {100 * a.ap:.1f} [{100 * a.ap_low:.1f}, {100 * a.ap_high:.1f}] | "
                               f"{100 * a.auc:.1f} [{100 * a.auc_low:.1f}, {100 * a.auc_high:.1f}] | ")
    assert lines[4].startswith("| onlyfake | g2 | - | - | ")
    assert "400 resamples" in lines[-1] and "stratified by class" in lines[-1] and "seed 7" in lines[-1]
    write_report(report, tmp_path / "t.csv", group=True)
    write_report(report, tmp_path / "t.json")
    with (tmp_path / "t.csv").open() as f:
        table_rows = list(csv.DictReader(f))
    assert float(table_rows[-1]["auc_low"]) == mean.auc_low and table_rows[2]["ap_low"] == ""
    payload = json.loads((tmp_path / "t.json").read_text())
    assert payload["intervals"] == {"resamples": 400, "seed": 7, "level": 0.95}
    assert payload["rows"][-1]["ap_high"] == mean.ap_high


def test_bootstrap_of_1000_resamples_of_800_images_takes_seconds_not_minutes():
    import time
    y, s = realistic(800)
    start = time.perf_counter()
    bootstrap(y, s, 1000, seed=0)
    assert time.perf_counter() - start < 5  # about 0.15 s on a shared CPU; a loop over scikit-learn takes ~9 s


def test_eval_command_prints_auc_and_intervals_and_refuses_no_resamples(roots, small_weights, tmp_path, cli):
    common = ["eval", *roots, "--weights", small_weights, "--device", "cpu", "--workers", "0", "--quiet"]
    plain = cli.invoke(common)
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.splitlines()[0] == "| generator | AP | AUC | acc | real acc | fake acc | real | fake | unreadable |"
    assert "[" not in plain.stdout

    interval = r"\d+\.\d \[\d+\.\d, \d+\.\d\]"
    shown = cli.invoke([*common, "--intervals", "200", "--seed", "3", "--out", tmp_path / "t.json"])
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    for line in lines[2:6]:  # biggan, progan, sdv14, mean
        assert re.match(rf"\| \S+ \| {interval} \| {interval} \| ", line), line
    assert "200 resamples" in shown.stdout and "seed 3" in shown.stdout
    assert json.loads((tmp_path / "t.json").read_text())["intervals"]["seed"] == 3
    assert cli.invoke([*common, "--intervals", "200", "--seed", "3"]).stdout == shown.stdout  # seeded: repeats

    for args, message in [(["--intervals", "0"], "--intervals takes the number of bootstrap resamples, 1 or more "
                                                  "(e.g. 1000), not 0"),
                          (["--intervals", "-5"], "--intervals takes the number of bootstrap resamples, 1 or more "
                                                   "(e.g. 1000), not -5"),
                          (["--intervals", "10", "--seed", "-1"], "--seed takes 0 or more, not -1")]:
        refused = cli.invoke([*common, *args])
        assert refused.exit_code == 2 and refused.stdout == ""
        assert refused.stderr.strip().splitlines() == [f"error: {message}"]


def test_evaluate_scores_an_onnx_export_as_its_checkpoint(roots, detector, small_weights, tmp_path):
    """eval goes through load_backend: an export (here beside its checkpoint) is evaluated with ONNX Runtime."""
    from ipdscan.model.backends import load_backend
    from ipdscan.model.export import export_onnx

    exported = export_onnx(small_weights, tmp_path / "small.onnx")
    onnx_detector = load_backend(exported.path, "cpu")
    assert onnx_detector.backend == "onnxruntime"
    by_onnx = evaluate(roots, onnx_detector, batch_size=4, workers=0)
    by_torch = evaluate(roots, detector, batch_size=4, workers=0)
    assert [row.generator for row in by_onnx.rows] == [row.generator for row in by_torch.rows]
    for ours, theirs in zip(by_onnx.rows, by_torch.rows):
        assert ours.ap == pytest.approx(theirs.ap, abs=1e-3) and ours.auc == pytest.approx(theirs.auc, abs=1e-3)
