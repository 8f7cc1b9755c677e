"""Late fusion of the color and depth pyramids, level by level (Nguyen et al.).

"mean" (P_f = (P_c + P_d) / 2, the better variant in the paper: 62.6 vs 61.5 PQ) has no parameters;
"concat" concatenates the two levels and maps them back to the pyramid width with one 1x1 conv per level.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class LateFusion(nn.Module):
    def __init__(self, mode: str, channels: int, num_levels: int) -> None:
        super().__init__()
        if mode not in ("mean", "concat"):
            raise ValueError(f"fusion mode must be 'mean' or 'concat', got {mode!r}")
        self.mode = mode
        self.reduce = (
            nn.ModuleList(nn.Conv2d(2 * channels, channels, 1) for _ in range(num_levels)) if mode == "concat" else None
        )

    def forward(self, color: Sequence[torch.Tensor], depth: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if self.reduce is None:
            return [(c + d) / 2 for c, d in zip(color, depth, strict=True)]
        return [conv(torch.cat((c, d), dim=1)) for conv, c, d in zip(self.reduce, color, depth, strict=True)]
