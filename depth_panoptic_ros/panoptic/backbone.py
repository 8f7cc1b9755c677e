"""ResNet-18/34/50 encoders returning C2..C5, named exactly like torchvision so its ImageNet weights load.

torchvision is not a dependency, so the ResNets are written here; keeping torchvision's parameter and buffer
names (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0`` ...) lets a user's ImageNet
checkpoint load into the color encoder and, with the first convolution averaged over RGB, the depth encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

NormFactory = Callable[[int], nn.Module]


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters (as detectron2).

    Panoptic training runs a handful of large crops per GPU; batch statistics that small would be noise, so
    the ImageNet statistics are kept and folded into one scale and shift. Everything is a buffer: nothing
    here is trained. Buffer names match nn.BatchNorm2d (minus num_batches_tracked).
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        # Cast so that autocast (fp16/bf16 activations) stays in the activation dtype.
        return x * scale.to(x.dtype).reshape(1, -1, 1, 1) + shift.to(x.dtype).reshape(1, -1, 1, 1)


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int, norm: NormFactory) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, channels, stride)
        self.bn1 = norm(channels)
        self.conv2 = _conv3x3(channels, channels)
        self.bn2 = norm(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, channels * self.expansion, stride, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits in the 3x3 convolution."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int, norm: NormFactory) -> None:
        super().__init__()
        self.conv1 = _conv1x1(in_channels, channels)
        self.bn1 = norm(channels)
        self.conv2 = _conv3x3(channels, channels, stride)
        self.bn2 = norm(channels)
        self.conv3 = _conv1x1(channels, channels * self.expansion)
        self.bn3 = norm(channels * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, channels * self.expansion, stride, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def _downsample(in_channels: int, out_channels: int, stride: int, norm: NormFactory) -> nn.Sequential | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(_conv1x1(in_channels, out_channels, stride), norm(out_channels))


ARCHITECTURES: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "r18": (BasicBlock, (2, 2, 2, 2)),
    "r34": (BasicBlock, (3, 4, 6, 3)),
    "r50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """ResNet trunk without the classifier; forward gives C2..C5 (strides 4, 8, 16, 32)."""

    def __init__(self, name: str, in_channels: int = 3, frozen_bn: bool = True) -> None:
        super().__init__()
        if name not in ARCHITECTURES:
            raise ValueError(f"ResNet name must be one of {sorted(ARCHITECTURES)}, got {name!r}")
        block, depths = ARCHITECTURES[name]
        norm: NormFactory = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
        self.name = name
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths = (64, 128, 256, 512)
        channels = 64
        for i, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            blocks = []
            for j in range(depth):
                blocks.append(block(channels, width, 2 if i > 0 and j == 0 else 1, norm))
                channels = width * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.out_channels = tuple(w * block.expansion for w in widths)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        c2 = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        return c2, c3, c4, self.layer4(c4)


def load_imagenet_state_dict(model: ResNet, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a torchvision ImageNet checkpoint (``fc.*`` ignored) into ``model``.

    A 1-band encoder (depth) gets the first convolution averaged over RGB: the mean filter responds to
    intensity structure, which is the closest ImageNet has to a depth edge. Any other mismatch is an error
    naming the keys, so that a ResNet-34 file is never silently half-loaded into a ResNet-18.
    """
    ours = model.state_dict()
    theirs = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    if not any(k.endswith("num_batches_tracked") for k in ours):  # FrozenBatchNorm2d does not count batches
        theirs = {k: v for k, v in theirs.items() if not k.endswith("num_batches_tracked")}
    missing = sorted(k for k in ours.keys() - theirs.keys() if not k.endswith("num_batches_tracked"))
    unexpected = sorted(theirs.keys() - ours.keys())
    if missing or unexpected:
        raise ValueError(
            f"state dict is not a torchvision {model.name}: missing {missing[:4]} ({len(missing)} in all), "
            f"unexpected {unexpected[:4]} ({len(unexpected)} in all)"
        )
    conv1 = theirs["conv1.weight"]
    if conv1.shape[1] != model.in_channels:
        if model.in_channels != 1:
            raise ValueError(
                f"conv1.weight has {conv1.shape[1]} input bands, the encoder {model.in_channels}; "
                "only a 1-band encoder is adapted (RGB average)"
            )
        theirs["conv1.weight"] = conv1.mean(dim=1, keepdim=True)
    wrong = [
        f"{k}: expected {tuple(ours[k].shape)}, got {tuple(v.shape)}"
        for k, v in theirs.items()
        if v.shape != ours[k].shape
    ]
    if wrong:
        raise ValueError(
            f"state dict shapes do not match a torchvision {model.name}: {wrong[:4]} ({len(wrong)} in all)"
        )
    model.load_state_dict({**ours, **theirs})
