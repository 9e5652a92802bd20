"""AutoGAN-style up-sampling simulator (Zhang, Karaman, Chang, WIFS 2019; ref. [8] of the IPD-Net paper).

An encoder/decoder with no skip connections, so every output pixel passes through a GAN generator's
up-sampling path. Trained (L1) to reproduce real photos, its outputs keep the real content and carry the
up-sampler's spectral traces. Three decoders, one per common GAN up-sampler: transposed convolution
(k4 s2, checkerboard), nearest + conv, bilinear + conv.

Trained as the paper trains it, with L1 plus an adversarial loss (a small PatchGAN, least squares):
L1 alone gives the mean of the plausible textures, so fakes are blurrier than their reals and a detector
learns "smooth = fake". The adversarial term pushes the output towards real texture statistics.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .colour import match_channels

UPSAMPLERS = ("convt", "nearest", "bilinear")


def up(cin: int, cout: int, kind: str) -> nn.Module:
    if kind == "convt":
        return nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode=kind), nn.Conv2d(cin, cout, 3, padding=1))


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class PatchDiscriminator(nn.Module):
    """Scores overlapping ~22 px patches real (1) or simulated (0); input in [-1, 1]."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * w, 1, 3, padding=1),
        )

    def forward(self, x):
        return self.net(x)


class AutoGANNet(nn.Module):
    """256 -> 64 (two stride-2 convs) -> 256 (two up-sampling stages); input and output in [-1, 1]."""

    def __init__(self, upsampler: str, width: int = 32):
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            ResBlock(4 * w),
        )
        self.decoder = nn.Sequential(
            up(4 * w, 2 * w, upsampler), nn.ReLU(inplace=True),
            up(2 * w, w, upsampler), nn.ReLU(inplace=True),
            nn.Conv2d(w, 3, 3, padding=1), nn.Tanh(),
        )

    def forward(self, x):
        return self.decoder(self.encoder(x))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1)


class AutoGAN:
    """One trained simulator; ``prepare`` trains it on the train-split reals (or loads saved weights)."""

    def __init__(self, upsampler: str, steps: int = 300, batch: int = 16, patch: int = 64, width: int = 32,
                 lr: float = 2e-3, adversarial_weight: float = 0.02):
        self.upsampler, self.steps, self.batch, self.patch, self.width, self.lr = upsampler, steps, batch, patch, width, lr
        self.adversarial_weight = adversarial_weight
        self.name = f"autogan_{upsampler}"
        self.net: AutoGANNet | None = None

    def prepare(self, train_windows: Sequence[np.ndarray], workdir: Path, seed: int) -> dict:
        """Train (L1 + adversarial) on random patches of ``train_windows``; weights cached in ``workdir`` per seed/config."""
        adv = f"-adv{self.adversarial_weight:g}" if self.adversarial_weight else ""
        path = Path(workdir) / f"{self.name}-w{self.width}{adv}-seed{seed}-steps{self.steps}.pt"
        torch.manual_seed(seed)
        self.net = AutoGANNet(self.upsampler, self.width)
        if path.exists():
            self.net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            self.net.eval()
            record = path.with_suffix(".json")
            return {**(json.loads(record.read_text()) if record.exists() else {}), "trained": False}
        rng = np.random.default_rng(seed)
        critic = PatchDiscriminator(self.width)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        opt_critic = torch.optim.Adam(critic.parameters(), lr=self.lr / 4, betas=(0.5, 0.999))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.steps)
        start, losses = time.perf_counter(), []
        self.net.train()
        for _ in range(self.steps):
            x = to_tensor(self.sample_patches(train_windows, rng))
            y = self.net(x)
            l1 = (y - x).abs().mean()
            loss = l1
            if self.adversarial_weight:
                loss = l1 + self.adversarial_weight * (critic(y) - 1).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if self.adversarial_weight:
                critic_loss = (critic(x) - 1).pow(2).mean() + critic(y.detach()).pow(2).mean()
                opt_critic.zero_grad(set_to_none=True)
                critic_loss.backward()
                opt_critic.step()
            losses.append(l1.item())
        self.net.eval()
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.state_dict(), path)
        tail = losses[-max(1, len(losses) // 10):]
        info = {"weights": str(path), "train_s": round(time.perf_counter() - start, 1), "steps": self.steps,
                "adversarial_weight": self.adversarial_weight, "final_l1": round(float(np.mean(tail)), 4)}
        path.with_suffix(".json").write_text(json.dumps(info) + "\n")  # so a reuse still reports how it was trained
        return {**info, "trained": True}

    def sample_patches(self, windows: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        out = np.empty((self.batch, self.patch, self.patch, 3), np.uint8)
        for i, j in enumerate(rng.integers(0, len(windows), self.batch)):
            w = windows[j]
            top = rng.integers(0, w.shape[0] - self.patch + 1)
            left = rng.integers(0, w.shape[1] - self.patch + 1)
            out[i] = w[top:top + self.patch, left:left + self.patch]
        return out

    @torch.no_grad()
    def __call__(self, window: np.ndarray) -> np.ndarray:
        y = self.net(to_tensor(window[None]))[0].add(1).mul(127.5).permute(1, 2, 0).numpy()
        return match_channels(y, window)  # a briefly trained simulator desaturates and flattens
