import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ipdscan.eval.labelled import read_pixels
from ipdscan.eval.metrics import metrics
from ipdscan.model.detector import load_detector
from ipdscan.model.ipdnet import IPDConfig, IPDNet
from ipdscan.model.preprocess import crop
from ipdscan.model.weights import load_checkpoint
from ipdscan.train import TrainConfig, TrainError, train
from ipdscan.train.data import split_roots
from ipdscan.train.loop import Logits, Run
from ipdscan.train.schedule import Progress
from ipdscan.train.topology import Topology

from training import SMALL, small_config, write_textures


def val_events(run_dir: Path) -> list[dict]:
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [e for e in events if e["event"] == "val"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_textures(tmp_path_factory.mktemp("tiny"), 12)


@pytest.mark.slow
def test_ipdnet_learns_the_upsampling_trace(tmp_path):
    root = write_textures(tmp_path / "data", 64)
    summary = train(small_config(root, tmp_path / "run", epochs=26, batch_size=16, log_every=10))
    vals = val_events(tmp_path / "run")
    assert vals[0]["ap"] < summary["best_val_ap"] - 0.1  # after one epoch it tells them apart far worse ...
    assert summary["best_val_ap"] >= 0.9 and vals[-1]["ap"] >= 0.9  # ... than trained, and stays so
    assert vals[-1]["n_real"] == vals[-1]["n_fake"] >= 12

    # best.pt is a scan-ready checkpoint: scored the way `ipdscan scan --weights` scores, it ranks the
    # held-out images as training's validation did.
    detector = load_detector(tmp_path / "run" / "best.pt", "cpu", precision="fp32")
    split = split_roots([str(root)], 0.25, 3)
    crops = torch.stack([crop(read_pixels(s.path), SMALL) for s in split.val])
    scores = detector.score(crops)
    assert metrics([s.label for s in split.val], scores)["ap"] == pytest.approx(summary["best_val_ap"], abs=1e-6)
    assert detector.checkpoint.provenance["config"]["batch_size"] == 16
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000


def test_training_logits_are_the_models():
    torch.manual_seed(0)
    model = IPDNet(IPDConfig("layer2", input_size=32)).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(Logits(model, bf16=False)(x), model(x), rtol=1e-4, atol=1e-4)
        assert (Logits(model, bf16=True)(x) - model(x)).abs().max() < 0.1 * model(x).abs().max()


@pytest.mark.slow
def test_resume_continues_with_the_same_optimizer_state(tiny_data, tmp_path):
    straight = train(small_config(tiny_data, tmp_path / "straight", max_steps=4))
    first = train(small_config(tiny_data, tmp_path / "split", max_steps=2))
    assert first["steps"] == 2 and straight["steps"] == 4
    resumed = train(small_config(tiny_data, tmp_path / "split", max_steps=4, resume=str(tmp_path / "split")))
    assert resumed["steps"] == 4

    a = torch.load(tmp_path / "straight" / "last.state.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "last.state.pt", weights_only=True)
    where = ("step", "epoch", "batch_in_epoch", "lr")  # best AP differs: the split run also validated at step 2
    assert [a["progress"][k] for k in where] == [b["progress"][k] for k in where] == [4, 1, 1, 1e-4]
    states_a, states_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert states_a.keys() == states_b.keys()
    for key in states_a:
        assert float(states_a[key]["step"]) == float(states_b[key]["step"]) == 4
        for name in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(states_a[key][name], states_b[key][name], rtol=1e-5, atol=1e-8)
    model_a = load_checkpoint(tmp_path / "straight" / "last.pt").model.state_dict()
    model_b = load_checkpoint(tmp_path / "split" / "last.pt").model.state_dict()
    for key in model_a:
        torch.testing.assert_close(model_a[key], model_b[key], rtol=1e-5, atol=1e-6)

    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["event"] == "train"]
    assert steps == [1, 2, 3, 4]  # the resumed run picked up at step 3, nothing repeated or skipped


def test_checkpoint_reloads_to_identical_scores(tiny_data, tmp_path):
    train(small_config(tiny_data, tmp_path / "run", max_steps=2))
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    first, second = (load_detector(tmp_path / "run" / "last.pt", "cpu") for _ in range(2))
    assert np.array_equal(first.score(x), second.score(x))
    provenance = first.checkpoint.provenance
    assert provenance["step"] == 2 and provenance["config"]["lr"] == 1e-4 and provenance["config"]["betas"] == [0.9, 0.999]
    assert provenance["data"]["train"]["real"] + provenance["data"]["val"]["real"] == 12
    assert provenance["versions"]["torch"] == str(torch.__version__)


@pytest.mark.slow  # trains a run first
def test_resume_refuses_mismatched_files(tiny_data, tmp_path):
    train(small_config(tiny_data, tmp_path / "run", max_steps=1))
    state = tmp_path / "run" / "last.state.pt"
    kept = state.read_bytes()
    train(small_config(tiny_data, tmp_path / "run", max_steps=2, resume=str(tmp_path / "run")))
    state.write_bytes(kept)  # last.pt from step 2, state from step 1
    with pytest.raises(TrainError, match="different steps"):
        train(small_config(tiny_data, tmp_path / "run", max_steps=3, resume=str(tmp_path / "run")))
    state.unlink()
    with pytest.raises(TrainError, match="missing"):
        train(small_config(tiny_data, tmp_path / "run", max_steps=3, resume=str(tmp_path / "run")))


def test_init_from_starts_a_new_run_from_a_checkpoints_weights(tiny_data, tmp_path):
    train(small_config(tiny_data, tmp_path / "base", max_steps=2, seed=7))
    base = load_checkpoint(tmp_path / "base" / "last.pt")
    run = Run(small_config(tiny_data, tmp_path / "tuned", init_from=str(tmp_path / "base" / "last.pt")),
              Topology(0, 1, torch.device("cpu")))
    for key, value in base.model.state_dict().items():
        assert torch.equal(run.model.state_dict()[key], value)
    assert run.progress.step == 0 and not run.optimizer.state  # a new run: fresh optimizer, step 0
    assert run.provenance(None)["initial_weights"] == {"name": base.name, "sha256": base.sha256}

    fresh = Run(small_config(tiny_data, tmp_path / "fresh"), Topology(0, 1, torch.device("cpu")))
    assert not torch.equal(fresh.model.state_dict()["head.classifier.0.weight"], base.model.state_dict()["head.classifier.0.weight"])
    with pytest.raises(TrainError, match="same variant"):
        train(small_config(tiny_data, tmp_path / "other", variant="layer3", init_from=str(tmp_path / "base" / "last.pt")))
    with pytest.raises(ValueError, match="give one"):
        small_config(tiny_data, tmp_path / "x", init_from="a.pt", resume="b")



def test_a_plain_checkpoint_starts_an_npr_run_with_the_same_scores(tiny_data, tmp_path):
    train(small_config(tiny_data, tmp_path / "base", max_steps=2, seed=7))
    base = load_checkpoint(tmp_path / "base" / "last.pt")
    run = Run(small_config(tiny_data, tmp_path / "npr", npr=True, init_from=str(tmp_path / "base" / "last.pt")),
              Topology(0, 1, torch.device("cpu")))
    stem = run.model.state_dict()["trunk.stem.0.weight"]
    assert stem.shape[1] == 6 and torch.equal(stem[:, :3], base.model.state_dict()["trunk.stem.0.weight"])
    assert not stem[:, 3:].any()  # the NPR channels start silent ...
    images = torch.rand(2, 3, 32, 32)  # SMALL's input size
    base.model.eval(), run.model.eval()
    with torch.no_grad():  # ... so the widened model scores as the checkpoint does
        assert torch.allclose(run.model(images), base.model(images), atol=1e-5)
    train(small_config(tiny_data, tmp_path / "npr-base", npr=True, max_steps=1))
    with pytest.raises(TrainError, match=r"layer2 \+ NPR model .* this run builds a layer2 model"):
        train(small_config(tiny_data, tmp_path / "plain", init_from=str(tmp_path / "npr-base" / "last.pt")))

def test_unreadable_images_are_skipped_and_counted(tmp_path):
    root = write_textures(tmp_path / "data", 8)
    (root / "1_fake" / "000.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    summary = train(small_config(root, tmp_path / "run", epochs=2, val_split=0))
    assert summary["unreadable"] == 1
    assert summary["steps"] == 2 * 4  # 16 training files, one unreadable: 4 batches per epoch, one of 3 images
    assert not (tmp_path / "run" / "best.pt").exists()  # no validation set: nothing to pick a best by


def plateau_run(**config):
    """A Run reduced to what its learning-rate schedule touches."""
    logged = []
    run = SimpleNamespace(config=SimpleNamespace(plateau_metric="acc", min_delta=0.001, patience=2, min_lr=1e-6, **config),
                          progress=Progress(lr=1e-4), log=lambda event, **f: logged.append((event, f)), say=lambda m: None)
    return run, logged


def test_lr_drops_tenfold_after_patience_and_stops_below_min_lr():
    run, logged = plateau_run()
    accs = [0.6, 0.7, 0.7005, 0.69]  # +0.0005 is below min_delta: no gain
    assert [Run.plateau(run, {"acc": a}) for a in accs] == ["", "", "", ""]
    assert run.progress.lr == pytest.approx(1e-5) and logged == [("lr", {"lr": run.progress.lr})]
    # After a drop the next validation sets a fresh baseline (CNNDetection restarts its early stopping).
    outcomes = [Run.plateau(run, {"acc": 0.5}) for _ in range(6)]
    assert outcomes == [""] * 5 + ["lr_below_min"]  # 1e-5 -> 1e-6 (kept) -> 1e-7 (below 1e-6): stop
    assert run.progress.lr == pytest.approx(1e-7)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_torchrun_two_processes_write_one_run(tiny_data, tmp_path, run_cli):
    out = tmp_path / "run"
    env = {**run_cli.env, "OMP_NUM_THREADS": "1"}  # torchrun's own, longer timeout: it trains in two processes
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "ipdscan.train", str(tiny_data), "--out", str(out), "--device", "cpu", "--max-steps", "2",
           "--batch-size", "4", "--workers", "0", "--log-every", "1", "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=220, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "best.pt.sha256", "curves.png", "last.pt",
                                                     "last.pt.sha256", "last.state.pt", "metrics.jsonl"]
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "train"] == [1, 2]  # one writer, not two
    assert [e["event"] for e in events].count("val") == 1
    checkpoint = load_checkpoint(out / "last.pt")
    assert checkpoint.provenance["world_size"] == 2 and checkpoint.provenance["step"] == 2
    assert json.loads(done.stdout)["steps"] == 2  # one summary, from rank 0


def test_an_interrupted_training_is_exit_2_naming_how_to_resume(tiny_data, tmp_path, monkeypatch, capsys):
    import ipdscan.train.__main__ as train_cli
    from ipdscan.interrupt import Terminated
    for raised, said in ((KeyboardInterrupt, "interrupted"), (Terminated, "terminated by SIGTERM")):
        def interrupted(config):
            raise raised()

        monkeypatch.setattr(train_cli, "train", interrupted)
        assert train_cli.main([str(tiny_data), "--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {said}; the run keeps")  # issue 21: it said "error: ; the run keeps"
        assert f"--resume {tmp_path / 'run'}" in err and "Traceback" not in err


def test_the_command_line_parses_to_the_train_config_its_flags_name():
    """The options are built from TrainConfig's fields (issue 22): a long-running run's command line must parse as
    it always did, to the same TrainConfig."""
    from ipdscan.train.__main__ import parse_args
    line = ("/work/data/corpus-v3 --out /work/runs/v3 --resume /work/runs/v3 --pair-sync --blur-prob 0.3 "
            "--jpeg-prob 0.3 --downscale-prob 0.2 --threads 2 --workers 1 --val-every 200 --plateau-metric ap "
            "--max-minutes 120 --name ipdnet-layer2-corpus-v3 --no-progress")
    assert parse_args(line.split()) == TrainConfig(
        roots=["/work/data/corpus-v3"], out="/work/runs/v3", resume="/work/runs/v3", pair_sync=True, blur_prob=0.3,
        jpeg_prob=0.3, downscale_prob=0.2, threads=2, workers=1, val_every=200, plateau_metric="ap", max_minutes=120,
        name="ipdnet-layer2-corpus-v3", progress=False)
    assert parse_args(["r"]) == TrainConfig(roots=["r"])  # the defaults are the dataclass's
    config = parse_args("r1 r2 --variant layer3 --npr --epochs 7 --max-steps 9 --batch-size 8 --lr 0.01 --betas 0.5 0.9 "
                        "--seed 4 --device cpu --cpu-bf16 --no-channels-last --val-split 0.2 --patience 2 "
                        "--min-lr 0.001 --min-delta 0.01 --blur-sigma 1 2 --jpeg-quality 40 90 --flip-prob 0 "
                        "--downscale-range 0.6 0.9 --save-every-minutes 0 --log-every 3 --init-from w.pt".split())
    assert config == TrainConfig(
        roots=["r1", "r2"], variant="layer3", npr=True, epochs=7, max_steps=9, batch_size=8, lr=0.01, betas=(0.5, 0.9),
        seed=4, device="cpu", cpu_bf16=True, channels_last=False, val_split=0.2, patience=2, min_lr=0.001,
        min_delta=0.01, blur_sigma=(1.0, 2.0), jpeg_quality=(40, 90), flip_prob=0.0, downscale_range=(0.6, 0.9),
        save_every_minutes=0.0, log_every=3, init_from="w.pt")
    assert type(config.jpeg_quality[0]) is int and type(config.betas[0]) is float


@pytest.mark.parametrize("argv, said", [
    (["r", "--bogus"], "No such option: --bogus"),
    (["r", "--variant", "layer9"], "'layer9' is not one of"),
    (["r", "--epochs", "0"], "epochs must be at least 1"),  # TrainConfig's own check
    ([], "Missing argument 'ROOT'"),
])
def test_bad_train_options_are_one_line_and_exit_2(argv, said, capsys):
    from ipdscan.train.__main__ import main
    assert main(argv, prog="ipdscan train") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and said in err and err.count("\n") == 1


def test_train_help_lists_every_config_field_as_a_flag(capsys):
    from dataclasses import fields

    from ipdscan.train.__main__ import main
    assert main(["--help"], prog="ipdscan train") == 0
    shown = capsys.readouterr().out
    assert shown.startswith("Usage: ipdscan train")
    flags = {"channels_last": "--no-channels-last", "progress": "--no-progress"}
    for spec in fields(TrainConfig):
        if spec.name not in ("roots", "preprocessing"):
            assert flags.get(spec.name, "--" + spec.name.replace("_", "-")) in shown
    # the flags argparse had (README and trainer/README.md name them): none renamed or lost
    shown_flags = set(re.findall(r"(?<![\w-])--[a-z0-9-]+", shown))
    assert shown_flags == {
        "--batch-size", "--betas", "--blur-prob", "--blur-sigma", "--cpu-bf16", "--device", "--downscale-prob",
        "--downscale-range", "--epochs", "--flip-prob", "--init-from", "--jpeg-prob", "--jpeg-quality", "--log-every",
        "--lr", "--max-minutes", "--max-steps", "--min-delta", "--min-lr", "--name", "--no-channels-last",
        "--no-progress", "--npr", "--out", "--pair-sync", "--patience", "--plateau-metric", "--resume",
        "--save-every-minutes", "--seed", "--threads", "--val-every", "--val-split", "--variant", "--workers", "--help"}
