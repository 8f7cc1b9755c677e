"""Panoptic FCN heads: the stride-4 feature encoder, and the position and kernel heads shared over P3..P7.

Layouts follow the reference implementation (dvlab-research/PanopticFCN), with plain convolutions where it
uses a deformable one in the position head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from depth_panoptic_ros.panoptic.config import GROUP_NORM_GROUPS
from depth_panoptic_ros.panoptic.levels import ENCODER_STRIDES

CENTER_PRIOR_BIAS = -2.19  # sigmoid(-2.19) ~ 0.1: focal-loss prior so early training is not swamped by negatives


def add_coordinates(x: torch.Tensor) -> torch.Tensor:
    """CoordConv input: append row and column coordinates in [-1, 1] so kernels can tell positions apart."""
    b, _, h, w = x.shape
    rows = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype).reshape(1, 1, h, 1).expand(b, 1, h, w)
    cols = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype).reshape(1, 1, 1, w).expand(b, 1, h, w)
    return torch.cat((x, rows, cols), dim=1)


def _conv_gn_relu(in_channels: int, channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
        nn.GroupNorm(GROUP_NORM_GROUPS, channels),
        nn.ReLU(inplace=True),
    )


def _tower(in_channels: int, channels: int, num_convs: int = 3) -> nn.Sequential:
    return nn.Sequential(*(_conv_gn_relu(in_channels if i == 0 else channels, channels) for i in range(num_convs)))


class FeatureEncoder(nn.Module):
    """Semantic FPN (P2..P5 summed at stride 4) -> CoordConv -> 3 convs to C_e: what every kernel is applied to.

    As in the reference, GroupNorm sits in the semantic FPN and the three encoder convolutions have none
    (ReLU only), so the features stay non-negative and their scale is set by the data, not by a norm.
    """

    def __init__(
        self, fpn_channels: int, channels: int, embed_dim: int, num_levels: int = len(ENCODER_STRIDES)
    ) -> None:
        super().__init__()
        self.scale_heads = nn.ModuleList()
        for level in range(num_levels):  # level 0 is P2 (stride 4): one conv and no upsampling
            ops: list[nn.Module] = []
            for k in range(max(level, 1)):
                ops.append(_conv_gn_relu(fpn_channels if k == 0 else channels, channels))
                if level > 0:
                    ops.append(nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False))
            self.scale_heads.append(nn.Sequential(*ops))
        for m in self.scale_heads.modules():
            if isinstance(m, nn.Conv2d):  # detectron2's c2_msra_fill
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self.encode = nn.Sequential(
            nn.Conv2d(channels + 2, embed_dim, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(embed_dim, embed_dim, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(embed_dim, embed_dim, 3, padding=1),
            nn.ReLU(inplace=True),
        )

    def forward(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        """P2..P5 -> (B, C_e, H/4, W/4)."""
        x = sum(head(level) for head, level in zip(self.scale_heads, levels, strict=True))
        return self.encode(add_coordinates(x))


class PositionHead(nn.Module):
    """Per level: thing-center heatmaps (one channel per thing class) and stuff maps (one per stuff class), logits."""

    def __init__(self, in_channels: int, channels: int, num_things: int, num_stuff: int) -> None:
        super().__init__()
        self.tower = _tower(in_channels, channels)
        self.centers = nn.Conv2d(channels, num_things, 3, padding=1)
        self.stuff = nn.Conv2d(channels, num_stuff, 3, padding=1)
        for conv in (self.centers, self.stuff):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.constant_(conv.bias, CENTER_PRIOR_BIAS)

    def forward(self, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.tower(level)
        return self.centers(x), self.stuff(x)


class KernelHead(nn.Module):
    """Per level and position: a C_e-dimensional kernel, shared by things (at centers) and stuff (region means)."""

    def __init__(self, in_channels: int, channels: int, embed_dim: int) -> None:
        super().__init__()
        self.tower = _tower(in_channels + 2, channels)
        self.out = nn.Conv2d(channels, embed_dim, 3, padding=1)
        nn.init.normal_(self.out.weight, std=0.01)
        nn.init.zeros_(self.out.bias)

    def forward(self, level: torch.Tensor) -> torch.Tensor:
        return self.out(self.tower(add_coordinates(level)))
