"""Training options beyond the paper: pair-synced batches, the down-scale augmentation, saves between validations
(a killed run resumes where it was), and the NPR residual input. The paper's recipe stays the default."""
import numpy as np
import pytest
import torch
from PIL import Image

from ipdscan.model.ipdnet import IPDConfig, IPDNet
from ipdscan.model.preprocess import Preprocessing
from ipdscan.model.weights import load_checkpoint, save_checkpoint
from ipdscan.train import TrainConfig, TrainError, train
from ipdscan.train.augment import Augmentation, sample_params, train_view
from ipdscan.train.data import Sample
from ipdscan.train.loop import Run
from ipdscan.train.pairs import PairedImages, collate_pairs, pair_up
from ipdscan.train.topology import Topology

from training import SMALL, small_config, write_textures

pytestmark = pytest.mark.usefixtures("one_thread")
STRONG = Augmentation(blur_prob=1.0, jpeg_prob=1.0, flip_prob=0.5, downscale_prob=1.0)


def test_the_papers_recipe_is_the_default():
    config = TrainConfig(roots=["x"])
    assert (config.blur_prob, config.jpeg_prob, config.downscale_prob, config.pair_sync, config.npr) == (0.1, 0.1, 0.0, False, False)
    assert config.model_config() == IPDConfig()


def test_pairs_are_namesakes_in_one_generator_folder_then_seeded_random():
    samples = ([Sample(f"/c/train/g/0_real/{i}.png", 0, "g") for i in range(3)]
               + [Sample(f"/c/train/g/1_fake/{i}.png", 1, "g") for i in range(2)]
               + [Sample(f"/c/train/faces/0_real/r{i}.jpg", 0, "faces") for i in range(2)]
               + [Sample(f"/c/train/faces/1_fake/f{i}.jpg", 1, "faces") for i in range(3)])
    pairs = pair_up(samples, seed=0)
    assert sorted(len(p) for p in pairs) == [1, 1, 2, 2, 2, 2]  # every sample exactly once
    assert sorted(s.path for p in pairs for s in p) == sorted(s.path for s in samples)
    for pair in pairs:
        assert len({s.generator for s in pair}) == 1 and [s.label for s in pair] in ([0, 1], [0], [1])
        if pair[0].generator == "g" and len(pair) == 2:
            assert pair[0].path.rsplit("/", 1)[1] == pair[1].path.rsplit("/", 1)[1]
    assert pair_up(samples, seed=0) == pairs and pair_up(samples[::-1], seed=0) == pairs  # seeded, order-free


def test_a_pair_shares_one_view_draw(tmp_path):
    """Identical files through every augmentation at p=1: the two views must be identical, crop and all."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 72, 3), dtype=np.uint8))
    for label in ("0_real", "1_fake"):
        (tmp_path / "g" / label).mkdir(parents=True)
        image.save(tmp_path / "g" / label / "x.png")
    pairs = pair_up([Sample(str(tmp_path / "g" / "0_real" / "x.png"), 0, "g"),
                     Sample(str(tmp_path / "g" / "1_fake" / "x.png"), 1, "g")], 0)
    data = PairedImages(pairs, SMALL, STRONG, seed=1)
    for epoch in range(4):
        (real, y0), (fake, y1) = data[0, epoch]
        assert (y0, y1) == (0, 1) and torch.equal(real, fake)
    batch = collate_pairs([data[0, 0], data[0, 1]])
    assert batch.crops.shape == (4, 3, 32, 32) and batch.labels.tolist() == [0, 1, 0, 1]


def test_downscale_is_drawn_last_so_the_papers_views_are_unchanged():
    paper, strong = Augmentation(), Augmentation(downscale_prob=1.0, downscale_range=(0.5, 0.5))
    for seed in range(20):
        a, b = sample_params(paper, np.random.default_rng(seed)), sample_params(strong, np.random.default_rng(seed))
        assert a.downscale is None and b.downscale == 0.5
        assert (a.blur_sigma is None, a.jpeg_quality is None, a.flip) == (b.blur_sigma is None, b.jpeg_quality is None, b.flip)
    pixels = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    assert train_view(pixels, strong, Preprocessing(pad=8, crop=32, size=32), np.random.default_rng(0)).shape == (3, 32, 32)
    with pytest.raises(ValueError, match="downscale_range"):
        Augmentation(downscale_range=(0.0, 1.0))


def test_pair_sync_needs_an_even_batch_and_two_images_per_process(tmp_path):
    with pytest.raises(ValueError, match="even batch_size"):
        TrainConfig(roots=["x"], pair_sync=True, batch_size=5)
    data = write_textures(tmp_path / "data", 4)
    with pytest.raises(TrainError, match="at least 2 images per process"):
        Run(small_config(data, tmp_path / "run", batch_size=2, pair_sync=True), Topology(rank=0, world=2, device=torch.device("cpu")))


@pytest.mark.slow
def test_a_run_killed_between_validations_resumes_from_its_last_save_to_the_same_weights(tmp_path, monkeypatch):
    """Saves between validations (here after every step) and a pair-synced sampler that skips what the epoch
    already trained on: a run that dies at step 4 and is resumed ends where an unbroken run ends."""
    data = write_textures(tmp_path / "data", 12)
    options = dict(batch_size=2, pair_sync=True, downscale_prob=0.5, save_every_minutes=1e-9, val_split=0.25)
    straight = train(small_config(data, tmp_path / "straight", max_steps=6, **options))

    real_step = Run.train_step

    def dies_at_step_4(self, batch):
        if self.progress.step == 3:
            raise SystemExit("killed")  # nothing after this runs: no validation, no final save
        real_step(self, batch)

    monkeypatch.setattr(Run, "train_step", dies_at_step_4)
    with pytest.raises(SystemExit):
        train(small_config(data, tmp_path / "killed", max_steps=6, **options))
    assert load_checkpoint(tmp_path / "killed" / "last.pt").provenance["step"] == 3
    monkeypatch.setattr(Run, "train_step", real_step)
    resumed = train(small_config(data, tmp_path / "killed", max_steps=6, resume=str(tmp_path / "killed"), **options))
    assert straight["steps"] == resumed["steps"] == 6 and straight["epochs"] == resumed["epochs"]
    a = load_checkpoint(tmp_path / "straight" / "last.pt").model.state_dict()
    b = load_checkpoint(tmp_path / "killed" / "last.pt").model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_npr_is_an_option_beside_the_srm_channels_and_the_paper_model_is_unchanged(tmp_path):
    paper = IPDNet(IPDConfig())
    assert paper.npr is None and paper.trunk.stem[0].in_channels == 3 and IPDConfig().input_channels == 3
    torch.manual_seed(0)
    model = IPDNet(IPDConfig(input_size=32, npr=True)).eval()
    assert model.trunk.stem[0].in_channels == 6
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_pooled(x), model(x), rtol=1e-4, atol=1e-4)
        flat = torch.ones(1, 3, 32, 32)  # no neighbour differences: the NPR channels are zero
        assert model.npr(flat).abs().max() == 0
    save_checkpoint(tmp_path / "npr.pt", model, Preprocessing(pad=32, crop=32, size=32), name="npr")
    assert load_checkpoint(tmp_path / "npr.pt").config.npr is True
    with pytest.raises(ValueError, match="npr must be"):
        IPDConfig(npr="yes")


@pytest.mark.slow
def test_training_with_npr_and_strong_augmentation_runs_end_to_end(tmp_path):
    data = write_textures(tmp_path / "data", 12)
    summary = train(small_config(data, tmp_path / "run", max_steps=2, npr=True, blur_prob=0.5, jpeg_prob=0.5,
                                 downscale_prob=0.2, pair_sync=True))
    assert summary["steps"] == 2
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    assert checkpoint.config.npr and checkpoint.provenance["config"]["pair_sync"] is True
