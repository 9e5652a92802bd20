"""TAEF2 aligned fakes: a real window through the tiny FLUX.2 latent autoencoder (encode, then decode).

Latent diffusion models draw every image through their VAE decoder, so the decoder's synthesis traces
are what a detector of such images can learn; decode(encode(real)) carries those traces with the real
content, pixel-aligned ("aligned datasets", Rajan et al., ICLR 2025). TAEF2 (madebyollin/taesd, MIT) is
a distilled stand-in for the FLUX.2 VAE: an 8x down-sampling encoder to 32 latent channels and a decoder
that up-samples by nearest-neighbour + conv, with a group-normed channel mixer in the lowest-resolution
blocks. The network below is written from that architecture; the weight files name its layers by
position, so the module order here is part of the file format.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

LATENT_CHANNELS = 32
WIDTH = 64
WEIGHT_FILES = {"encoder": ("taef2_encoder.pth", "10a4e102"), "decoder": ("taef2_decoder.pth", "0a44a31e")}


def conv3x3(cin: int, cout: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


def channel_mixer(channels: int) -> nn.Sequential:
    """1x1 expand, GroupNorm, ReLU, 1x1 project: image-wide statistics for the lowest-resolution blocks."""
    hidden = 4 * channels
    return nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.GroupNorm(4, hidden),
                         nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1, bias=False))


class Block(nn.Module):
    """Three 3x3 convs with a residual path; optionally preceded by the channel mixer (added to its input)."""

    def __init__(self, channels: int = WIDTH, mixer: bool = False):
        super().__init__()
        self.conv = nn.Sequential(conv3x3(channels, channels), nn.ReLU(), conv3x3(channels, channels), nn.ReLU(),
                                  conv3x3(channels, channels))
        self.fuse = nn.ReLU()
        self.pool = channel_mixer(channels) if mixer else None  # "pool": the weight files' name for it

    def forward(self, x):
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + x)


class SoftClamp(nn.Module):
    """Bounds latents to (-3, 3) smoothly, as the decoder was trained to expect."""

    def forward(self, x):
        return torch.tanh(x / 3) * 3


def encoder() -> nn.Sequential:
    """(B, 3, H, W) in [0, 1] -> (B, 32, H/8, W/8) latents."""
    layers: list[nn.Module] = [conv3x3(3, WIDTH), Block()]
    for stage in range(3):
        layers.append(conv3x3(WIDTH, WIDTH, stride=2, bias=False))
        layers += [Block(mixer=stage == 2) for _ in range(3)]
    layers.append(conv3x3(WIDTH, LATENT_CHANNELS))
    return nn.Sequential(*layers)


def decoder() -> nn.Sequential:
    """(B, 32, h, w) latents -> (B, 3, 8h, 8w), roughly [0, 1]."""
    layers: list[nn.Module] = [SoftClamp(), conv3x3(LATENT_CHANNELS, WIDTH), nn.ReLU()]
    for stage in range(3):
        layers += [Block(mixer=stage == 0) for _ in range(3)]
        layers += [nn.Upsample(scale_factor=2), conv3x3(WIDTH, WIDTH, bias=False)]
    layers += [Block(), conv3x3(WIDTH, 3)]
    return nn.Sequential(*layers)


class TAEF2Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = encoder(), decoder()

    def forward(self, x):  # (B, 3, H, W) in [0, 1], H and W multiples of 8
        return self.decoder(self.encoder(x)).clamp(0, 1)


def load_weights(net: TAEF2Net, weights_dir: Path) -> dict:
    """Load both halves after checking each file against its published sha256 prefix."""
    info = {}
    for part, (file, prefix) in WEIGHT_FILES.items():
        path = Path(weights_dir) / file
        if not path.is_file():
            raise RuntimeError(f"taef2 needs {file} in {weights_dir} (pass --taef2-weights DIR)")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if not digest.startswith(prefix):
            raise RuntimeError(f"{path} has sha256 {digest[:12]}..., expected {prefix}...: not the TAEF2 {part}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        getattr(net, part).load_state_dict(state)
        info[f"{part}_sha256"] = digest
    return info


class TAEF2:
    """Generator interface (see ``trainer.generators``): window -> decode(encode(window))."""

    name = "taef2"

    def __init__(self, weights_dir: Path | None):
        self.weights_dir = weights_dir
        self.net: TAEF2Net | None = None

    def prepare(self, train_windows: Sequence[np.ndarray], workdir: Path, seed: int) -> dict:
        if self.weights_dir is None:
            raise RuntimeError("taef2 needs its weights folder: pass --taef2-weights DIR")
        self.net = TAEF2Net().eval()
        return {"weights_dir": str(self.weights_dir), **load_weights(self.net, self.weights_dir)}

    @torch.no_grad()
    def __call__(self, window: np.ndarray) -> np.ndarray:
        h, w = window.shape[:2]
        if h % 8 or w % 8:
            raise ValueError(f"taef2 needs sides that are multiples of 8, got {w}x{h}")
        x = torch.from_numpy(np.array(window)).permute(2, 0, 1)[None].float().div(255)
        y = self.net(x)[0].mul(255).round().byte().permute(1, 2, 0)
        return y.numpy()
