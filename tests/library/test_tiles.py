"""Multi-crop scoring (--crops) and the explain heatmap."""
import numpy as np
import pytest
import torch
from PIL import Image

from ipdscan import load_detector
from ipdscan.model.ipdnet import IPDConfig, IPDNet
from ipdscan.model.preprocess import Preprocessing
from ipdscan.model.weights import save_checkpoint
from ipdscan.reports.score_colours import score_colours
from ipdscan.scanning.tiles import distinct_count, grid_shape, tile_offsets

from images import encoded


@pytest.mark.parametrize("h,w,n,shape", [(480, 640, 4, (2, 2)), (1000, 250, 4, (4, 1)), (100, 100, 9, (3, 3)),
                                         (300, 300, 1, (1, 1))])
def test_grid_follows_the_aspect_ratio(h, w, n, shape):
    assert grid_shape(h, w, n) == shape


def test_tiles_cover_the_image_corners_and_stay_inside():
    offsets = tile_offsets(480, 640, 4, 224)
    assert offsets == [(0, 0), (0, 416), (256, 0), (256, 416)]
    assert tile_offsets(100, 100, 4, 224) == [(-62, -62)]  # smaller than a tile: one centred window


def smooth(seed, h, w):
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (h // 32 + 1, w // 32 + 1, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))


def noisy(seed, h, w):
    rng = np.random.default_rng(seed)
    return np.clip(smooth(seed, h, w) + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)


BASE, PATCH = smooth(1, 448, 448), noisy(2, 448, 448)


@pytest.fixture(scope="module")
def calm_detector(tmp_path_factory):
    """Random weights whose last layer is rescaled so the two test textures land at about 0.1 and 0.9."""
    from ipdscan.model.preprocess import crop
    from ipdscan.model.torch_preprocess import to_model_input
    torch.manual_seed(0)
    model = IPDNet(IPDConfig()).eval()
    def as_input(a):
        return to_model_input(crop(torch.from_numpy(a.copy()).permute(2, 0, 1))[None])
    with torch.no_grad():
        low, high = (float(model(as_input(a))) for a in (BASE, PATCH))
        last = model.head.classifier[-1]
        scale = 4.4 / (high - low)  # logits of the two textures become -2.2 and +2.2
        last.weight.mul_(scale)
        last.bias.mul_(scale).sub_(scale * (low + high) / 2)
    path = tmp_path_factory.mktemp("calm") / "calm.pt"
    save_checkpoint(path, model, Preprocessing(), name="calm")
    return load_detector(path, "cpu")


def test_the_tile_over_a_different_quadrant_scores_highest(calm_detector, tmp_path, scan):
    h, w = BASE.shape[:2]
    for name, pixels in (("base", BASE), ("patch", PATCH)):
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
    base, patch = (r.score for r in scan([tmp_path / "base.png", tmp_path / "patch.png"], calm_detector))
    assert base < 0.2 and patch > 0.8  # the calibration holds through the real scan path
    mixed = BASE.copy()
    mixed[h // 2:, w // 2:] = PATCH[h // 2:, w // 2:]  # the bottom-right quadrant made "fake-like"
    Image.fromarray(mixed).save(tmp_path / "mixed.png")
    (result,) = scan([tmp_path / "mixed.png"], calm_detector, crops=4)
    assert result.crops_max_tile == "224,224,224,224"
    assert result.crops_max > 0.5 and result.crops_max > result.crops_mean + 0.1


def test_explain_writes_a_heatmap_with_the_image_aspect_ratio(calm_detector, tmp_path, checkpoint, cli):
    image = tmp_path / "wide.png"
    Image.fromarray(noisy(3, 300, 900)).save(image)
    out = tmp_path / "heat.png"
    result = cli.invoke(["explain", str(image), "--out", str(out), "--weights", str(checkpoint),
                         "--crops", "6", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    heat = Image.open(out)
    assert heat.width == 900 and 300 < heat.height < 360  # the image as it is, the legend band below it
    assert "centre-crop score" in result.stdout
    assert result.stdout.count("tile x=") == 6
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    result = cli.invoke(["explain", str(bad), "--out", str(out), "--weights", str(checkpoint)])
    assert result.exit_code == 2 and "bad.png" in result.stderr


def test_crops_columns_in_reports(tmp_path, checkpoint, cli):
    (tmp_path / "a.jpg").write_bytes(encoded(Image.fromarray(noisy(4, 480, 640)), "JPEG"))
    out = tmp_path / "r.jsonl"
    result = cli.invoke(["scan", str(tmp_path / "a.jpg"), "--weights", str(checkpoint), "--out", str(out),
                         "--crops", "4", "--workers", "0", "-q"])
    assert result.exit_code == 0, result.output
    import json
    row = json.loads(out.read_text())
    assert 0 <= row["crops_mean"] <= row["crops_max"] <= 1 and row["crops_max_tile"].count(",") == 3


def test_explain_leaves_pixels_no_tile_covers_as_the_image(tmp_path, checkpoint, cli):
    """A flat grey 1024x768 PNG with --tiles 4 (--crops' old name, kept hidden): the four corner tiles leave a cross
    between them, which stays grey (it used to be painted as score 0), the tiles take the map's colours, and a
    legend marks the threshold."""
    image = tmp_path / "grey.png"
    Image.new("RGB", (1024, 768), (128, 128, 128)).save(image)
    out = tmp_path / "heat.png"
    result = cli.invoke(["explain", str(image), "--out", str(out), "--weights", str(checkpoint),
                         "--tiles", "4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    heat = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert heat.shape[1] == 1024 and heat.shape[0] > 768
    picture = heat[:768]
    assert (picture[:, 300:700] == 128).all() and (picture[300:450] == 128).all()  # the uncovered cross
    assert (picture[:224, :224] != 128).any(axis=-1).all()  # a tile's pixels carry its score's colour
    legend = heat[768:]
    assert (legend == 0).all(axis=-1).any()  # the threshold tick and the labels are drawn in black
    ramp = legend[4 + 7]  # the middle row of the colour bar
    assert tuple(ramp[0]) == tuple(score_colours(np.array(0.0), 0.5)) and ramp[0][2] > ramp[0][0]  # blue at 0


def test_colour_map_is_blue_to_orange_through_grey_at_the_threshold():
    low, at, high = score_colours(np.array([0.0, 0.6, 1.0]), 0.6)
    assert low[2] > low[0] and high[0] > high[2]  # blue below, orange above: no red-green pair
    assert max(at) - min(at) == 0  # neutral grey at the threshold


def test_explain_takes_crops_as_scan_does_and_hides_the_old_tiles_name(cli):
    shown = cli.invoke(["explain", "--help"]).output
    assert "--crops" in shown and "--tiles" not in shown


def test_explain_on_a_small_image_scores_fewer_distinct_tiles(tmp_path, checkpoint, cli):
    assert distinct_count(256, 224) == 1 and distinct_count(1024, 224) == 8
    assert tile_offsets(256, 256, 16, 224, distinct=True) == [(16, 16)]
    assert len(tile_offsets(256, 256, 16, 224)) == 16  # --crops keeps its grid: scan rows do not change
    image = tmp_path / "small.png"
    Image.fromarray(noisy(5, 256, 256)).save(image)
    result = cli.invoke(["explain", str(image), "--out", str(tmp_path / "heat.png"), "--weights",
                         str(checkpoint), "--crops", "16", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "image too small for 16 distinct tiles of 224px: scored 1" in result.stderr
    assert result.stdout.count("tile x=") == 1
