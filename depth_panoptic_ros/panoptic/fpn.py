"""Feature pyramid P2..P7 over ResNet C2..C5 (detectron2's FPN with RetinaNet's P6/P7 from P5)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _xavier_fill(conv: nn.Conv2d) -> nn.Conv2d:
    """detectron2's c2_xavier_fill, the initialization the reference FPN was trained from."""
    nn.init.kaiming_uniform_(conv.weight, a=1)
    nn.init.zeros_(conv.bias)
    return conv


class FPN(nn.Module):
    """Top-down pyramid: P2..P5 from lateral 1x1 + nearest 2x upsampling, P6/P7 by stride-2 3x3 convs on P5.

    Inputs are expected padded to a multiple of 128 so that every 2x upsampling lands exactly on the level
    below (the network pads; see levels.SIZE_DIVISOR).
    """

    def __init__(self, in_channels: Sequence[int], channels: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(_xavier_fill(nn.Conv2d(c, channels, 1)) for c in in_channels)
        self.output = nn.ModuleList(_xavier_fill(nn.Conv2d(channels, channels, 3, padding=1)) for _ in in_channels)
        self.p6 = _xavier_fill(nn.Conv2d(channels, channels, 3, stride=2, padding=1))
        self.p7 = _xavier_fill(nn.Conv2d(channels, channels, 3, stride=2, padding=1))

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """C2..C5 -> [P2, P3, P4, P5, P6, P7]."""
        top = self.lateral[-1](features[-1])
        levels = [self.output[-1](top)]
        for feature, lateral, output in zip(features[-2::-1], self.lateral[-2::-1], self.output[-2::-1], strict=True):
            top = lateral(feature) + F.interpolate(top, scale_factor=2.0, mode="nearest")
            levels.insert(0, output(top))
        p6 = self.p6(levels[-1])
        return [*levels, p6, self.p7(F.relu(p6))]
