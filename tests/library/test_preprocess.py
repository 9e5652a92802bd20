import numpy as np
import pytest
import torch

from ipdscan.model.preprocess import Preprocessing, crop, reflect_indices
from ipdscan.model.torch_preprocess import random_crop, to_model_input


@pytest.mark.parametrize("h,w", [(1, 1), (1, 7), (5, 3), (200, 3000), (3000, 200), (224, 224), (481, 321)])
def test_any_size_preprocesses_to_model_input(h, w):
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8)
    window = crop(image)
    assert window.shape == (3, 224, 224) and window.dtype == torch.uint8
    x = to_model_input(window[None])
    assert x.shape == (1, 3, 256, 256) and x.dtype == torch.float32 and torch.isfinite(x).all()


@pytest.mark.parametrize("h,w", [(2, 2), (3, 5), (100, 37), (481, 321), (700, 900)])
def test_centre_crop_equals_numpy_reflect_pad_then_crop(h, w):
    image = torch.arange(h * w).view(1, h, w)
    padded = np.pad(image[0].numpy(), 224, mode="reflect")
    top, left = (padded.shape[0] - 224) // 2, (padded.shape[1] - 224) // 2
    assert np.array_equal(crop(image)[0].numpy(), padded[top:top + 224, left:left + 224])
    numpy_crop = crop(image.numpy())  # the CPU stage's: numpy in, numpy out, the same pixels
    assert isinstance(numpy_crop, np.ndarray) and np.array_equal(numpy_crop[0], padded[top:top + 224, left:left + 224])


def test_large_image_centre_crop_is_its_centre():
    image = torch.randint(0, 256, (3, 600, 800), dtype=torch.uint8)
    assert torch.equal(crop(image), image[:, 188:412, 288:512])
    window = crop(image.numpy())
    assert np.array_equal(window, image[:, 188:412, 288:512].numpy()) and window.flags.c_contiguous
    assert not np.shares_memory(window, image.numpy())  # a sample never keeps its whole image alive


def test_random_crop_spans_the_padded_image():
    image = torch.arange(10 * 10).view(1, 10, 10)
    g = torch.Generator().manual_seed(0)
    corners = {int(random_crop(image, generator=g)[0, 0, 0]) for _ in range(200)}
    assert len(corners) > 20  # many different windows, not just the centre


def test_reflect_indices_single_pixel_and_period():
    assert reflect_indices(1, -5, 3).tolist() == [0, 0, 0]
    assert reflect_indices(3, -4, 9).tolist() == [0, 1, 2, 1, 0, 1, 2, 1, 0]


def test_normalisation_comes_from_the_preprocessing():
    p = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), size=224)
    white = torch.full((1, 3, 224, 224), 255, dtype=torch.uint8)
    assert torch.allclose(to_model_input(white, p), torch.ones(1, 3, 224, 224))
    assert Preprocessing.from_dict(p.to_dict()) == p
