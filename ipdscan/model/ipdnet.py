"""IPD-Net: SRM high-pass filters -> untrained ResNet-50 trunk -> inter-patch dependency head.

Chen, Lo, Liao, Huang, "IPD-Net: Detecting AI-Generated Images via Inter-Patch
Dependencies", IJACSA 2024. One module per concept; ``IPDNet.forward_features``
returns the (B, HW, HW) dependency matrix so tests and tools can reach it.

``IPDConfig()`` is the paper's model. ``IPDConfig(npr=True)`` is an option beyond the paper, measured against it
in the model card: NPR residuals (Tan et al., CVPR 2024) as three more input channels beside the SRM ones.

``IPDNet.forward_pooled`` is the forward pass that scan, eval and train run: the same logits as ``forward``
with less work, the (HW, HW) matrix never formed (``InterPatchDependency.pooled``), the trunk's deeper stages
optionally in bfloat16. The SRM high-pass and the head always run in float32: the SRM subtracts neighbouring
pixels, and in bf16 (8 significant bits) that difference is mostly rounding error, which wrecks the ranking.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

# Channels and spatial stride of the ResNet-50 trunk after each stage.
TRUNK_CHANNELS = {"layer2": 512, "layer3": 1024, "layer4": 2048}
TRUNK_STRIDE = {"layer2": 8, "layer3": 16, "layer4": 32}
# Bounds on a config a checkpoint carries (the paper's: 256 and 256), so that one asking for a model that cannot
# fit in memory is refused when it loads, not mid-scan.
MAX_INPUT_SIZE, MAX_HIDDEN = 512, 4096


@dataclass(frozen=True)
class IPDConfig:
    variant: str = "layer2"  # where the ResNet-50 trunk is cut: layer2 | layer3 | layer4
    input_size: int = 256  # side of the square model input
    hidden: int = 256  # width of the first linear layer (layer2 only: the paper uses two)
    npr: bool = False  # beyond the paper: NPR residuals beside the SRM residuals as the trunk's input

    def __post_init__(self):
        if self.variant not in TRUNK_CHANNELS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {', '.join(TRUNK_CHANNELS)}")
        for name, most in (("input_size", MAX_INPUT_SIZE), ("hidden", MAX_HIDDEN)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
                raise ValueError(f"{name} must be an integer from 1 to {most}, not {value!r}")
        if not isinstance(self.npr, bool):
            raise ValueError(f"npr must be true or false, not {self.npr!r}")
        if self.input_size % TRUNK_STRIDE[self.variant]:
            raise ValueError(f"input_size must be a multiple of {TRUNK_STRIDE[self.variant]} for {self.variant}")

    @property
    def channels(self) -> int:
        return TRUNK_CHANNELS[self.variant]

    @property
    def input_channels(self) -> int:
        """Channels the trunk sees: the three SRM residuals, and three NPR residuals with ``npr``."""
        return 6 if self.npr else 3

    @property
    def patches(self) -> int:
        """HW: the number of feature-map positions ("patches") the dependency matrix relates."""
        return (self.input_size // TRUNK_STRIDE[self.variant]) ** 2

    def to_dict(self) -> dict:
        return asdict(self)


def srm_kernels() -> torch.Tensor:
    """The three "simple" SRM kernels (Zhou et al. 2018), each applied to and summed over R, G, B.

    Returns a (3, 3, 5, 5) conv weight: out channel k holds kernel k on every input channel.
    """
    kb = torch.tensor([[0, 0, 0, 0, 0],
                       [0, -1, 2, -1, 0],
                       [0, 2, -4, 2, 0],
                       [0, -1, 2, -1, 0],
                       [0, 0, 0, 0, 0]], dtype=torch.float32) / 4
    kv = torch.tensor([[-1, 2, -2, 2, -1],
                       [2, -6, 8, -6, 2],
                       [-2, 8, -12, 8, -2],
                       [2, -6, 8, -6, 2],
                       [-1, 2, -2, 2, -1]], dtype=torch.float32) / 12
    second_order_h = torch.zeros(5, 5)
    second_order_h[2, 1:4] = torch.tensor([1.0, -2.0, 1.0])
    second_order_h = second_order_h / 2
    kernels = torch.stack([kb, kv, second_order_h])  # (3, 5, 5)
    return kernels[:, None].expand(3, 3, 5, 5).contiguous()


class SRMFilter(nn.Module):
    """Fixed high-pass residuals: the trunk sees noise, not content."""

    def __init__(self):
        super().__init__()
        self.register_buffer("weight", srm_kernels())

    def forward(self, x):  # (B, 3, H, W) -> (B, 3, H, W)
        return nn.functional.conv2d(x, self.weight, padding=2)


class NPRFilter(nn.Module):
    """Neighbouring pixel relationships (Tan et al., CVPR 2024): x - up(down(x)) with nearest-neighbour resampling,
    i.e. each pixel minus the top-left pixel of its 2x2 cell. Generators' up-sampling correlates neighbouring
    pixels, which this residual exposes; scaled by 2/3 as the authors' code does."""

    def forward(self, x):  # (B, 3, H, W), H and W even -> (B, 3, H, W)
        down = nn.functional.interpolate(x, scale_factor=0.5, mode="nearest")
        return (x - nn.functional.interpolate(down, scale_factor=2.0, mode="nearest")) * (2.0 / 3.0)


class Bottleneck(nn.Module):
    """ResNet-50's residual block: 1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4, plus the shortcut.

    Written out rather than imported from torchvision: importing torchvision.models costs a scan ~1 s of
    start-up (it pulls in torch._dynamo). Names, shapes and initialisation match torchvision's ResNet-50,
    so checkpoints are interchangeable (tests/library/test_model.py checks it against torchvision).
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes * self.expansion:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes * self.expansion, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes * self.expansion))

    def forward(self, x):  # (B, inplanes, H, W) -> (B, 4*planes, H/stride, W/stride)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


# ResNet-50's stages: (name, bottleneck width, blocks, stride of the first block)
RESNET50_STAGES = (("layer1", 64, 3, 1), ("layer2", 128, 4, 2), ("layer3", 256, 6, 2), ("layer4", 512, 3, 2))


class ResNetTrunk(nn.Module):
    """A randomly initialised ResNet-50 cut after ``variant`` (the paper trains it from scratch)."""

    def __init__(self, variant: str, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        stages, inplanes = [], 64
        for name, planes, blocks, stride in RESNET50_STAGES:
            layer = [Bottleneck(inplanes, planes, stride)]
            inplanes = planes * Bottleneck.expansion
            layer += [Bottleneck(inplanes, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layer))
            if name == variant:
                break
        self.stages = nn.Sequential(*stages)
        for module in self.modules():  # torchvision's ResNet initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x):  # (B, in_channels, S, S) -> (B, C, S/stride, S/stride)
        return self.stages(self.stem(x))


class InterPatchDependency(nn.Module):
    """Two different 1x1 convs to C/2; their product relates every patch to every other (no softmax)."""

    def __init__(self, channels: int):
        super().__init__()
        self.query = nn.Conv2d(channels, channels // 2, kernel_size=1)
        self.key = nn.Conv2d(channels, channels // 2, kernel_size=1)

    def forward(self, x):  # (B, C, H, W) -> (B, HW, HW)
        q = self.query(x).flatten(2)  # (B, C/2, HW)
        k = self.key(x).flatten(2)  # (B, C/2, HW)
        return q.transpose(1, 2) @ k  # (B, HW, HW): [i, j] = <q_i, k_j>

    def pooled(self, x):  # (B, C, H, W) -> (B, HW): the head's average pooling of forward(x), without forming it
        """The head averages D[i, j] = <q_i, k_j> over i, which is <mean_i q_i, k_j>; q is a 1x1 conv, so
        mean_i q_i is that conv applied to the mean feature, and <q, Wk x_j + bk> = <Wk^T q, x_j> + <q, bk>.
        O(HW * C) instead of O(HW^2 * C): for layer2 this is a quarter of the whole network's arithmetic.
        """
        x = x.flatten(2)  # (B, C, HW)
        q = nn.functional.linear(x.mean(2), self.query.weight.flatten(1), self.query.bias)  # (B, C/2)
        key_weight, key_bias = self.key.weight.flatten(1), self.key.bias  # (C/2, C), (C/2,)
        return ((q @ key_weight).unsqueeze(1) @ x).squeeze(1) + (q @ key_bias).unsqueeze(1)


class DependencyHead(nn.Module):
    """Transpose, reshape to (HW, H, W), average-pool each map to one value, then linear layer(s)."""

    def __init__(self, config: IPDConfig):
        super().__init__()
        self.side = config.input_size // TRUNK_STRIDE[config.variant]
        self.pool = nn.AdaptiveAvgPool2d(1)
        hw = config.patches
        if config.variant == "layer2":
            self.classifier = nn.Sequential(nn.Linear(hw, config.hidden), nn.ReLU(inplace=True), nn.Linear(config.hidden, 1))
        else:
            self.classifier = nn.Linear(hw, 1)

    def forward(self, dependencies):  # (B, HW, HW) -> (B,) logits
        b, hw, _ = dependencies.shape
        maps = dependencies.transpose(1, 2).reshape(b, hw, self.side, self.side)  # (B, HW, H, W)
        pooled = self.pool(maps).flatten(1)  # (B, HW)
        return self.classifier(pooled).squeeze(1)  # (B,)


class IPDNet(nn.Module):
    def __init__(self, config: IPDConfig | None = None):
        super().__init__()
        self.config = config or IPDConfig()
        self.srm = SRMFilter()
        self.npr = NPRFilter() if self.config.npr else None
        self.trunk = ResNetTrunk(self.config.variant, self.config.input_channels)
        self.dependency = InterPatchDependency(self.config.channels)
        self.head = DependencyHead(self.config)

    def residuals(self, x):  # (B, 3, S, S) normalised images -> (B, input_channels, S, S): what the trunk sees
        return self.srm(x) if self.npr is None else torch.cat([self.srm(x), self.npr(x)], dim=1)

    def forward_features(self, x):  # (B, 3, S, S) normalised images -> (B, HW, HW)
        return self.dependency(self.trunk(self.residuals(x)))

    def forward_head(self, dependencies):  # (B, HW, HW) -> (B,) logits
        return self.head(dependencies)

    def forward(self, x):  # (B, 3, S, S) -> (B,) logits; sigmoid gives P(AI-generated)
        return self.forward_head(self.forward_features(x))

    def forward_pooled(self, x, stages=None, bf16_from: int | None = None):
        """(B, 3, S, S) normalised -> (B,) float32 logits, as ``forward`` computes them, with less work.

        ``stages``: the trunk's stem and stages to run (default: this model's; scoring passes copies with
        BatchNorm folded in). ``bf16_from``: the first of them to run under bfloat16 autocast (None: none).
        """
        features = self.residuals(x)
        for index, stage in enumerate(stages or [self.trunk.stem, *self.trunk.stages]):
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16_from is not None and index >= bf16_from):
                features = stage(features)
        features = features.to(x.dtype)  # back from any bf16 stages: the head runs in the input's precision
        return self.head.classifier(self.dependency.pooled(features)).squeeze(1)
