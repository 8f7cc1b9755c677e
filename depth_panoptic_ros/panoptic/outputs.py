"""What DepthAwarePanopticFCN.forward returns, in training and inference alike."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PanopticOutputs:
    """Raw network outputs over the padded input (see levels.SIZE_DIVISOR); heads on P3..P7.

    features: (B, C_e, H/4, W/4) encoded features; a kernel k gives the mask sigmoid(sum_c k_c * features[c]).
    centers: per level (B, n_thing, h_l, w_l) thing-center logits, channels in ClassTable.thing_indices order.
    stuff: per level (B, n_stuff, h_l, w_l) stuff-region logits, channels in ClassTable.stuff_indices order.
    kernels: per level (B, C_e, h_l, w_l), a kernel at every position.
    """

    features: torch.Tensor
    centers: list[torch.Tensor]
    stuff: list[torch.Tensor]
    kernels: list[torch.Tensor]

    def image(self, index: int) -> PanopticOutputs:
        """The outputs of one image of the batch (batch size 1), e.g. to run inference image by image."""
        batch = self.features.shape[0]
        if not 0 <= index < batch:
            raise ValueError(f"image index must lie in 0..{batch - 1} (batch size {batch}), got {index}")
        pick = slice(index, index + 1)
        return PanopticOutputs(
            self.features[pick],
            [c[pick] for c in self.centers],
            [s[pick] for s in self.stuff],
            [k[pick] for k in self.kernels],
        )
