"""The learned merge head (seed 003, the Inria report's convolutional panoptic merge), merge ``learned``.

For each thing class one small CNN refines each candidate instance's soft mask from a fixed-channel stack:
the candidate's own mask, the per-class "semantic" maps of every thing class (the per-pixel maximum over that
class's candidates) and every stuff class (its stuff mask, 0 where the class is absent), and the completed
depth (normalized as the network's depth input). A channel-wise (depthwise) k x k convolution, then a k x k
convolution down to one channel and a sigmoid give the refined mask; the refined masks then compete per pixel
as in de Geus et al. (merge.merge_degeus). It works on the stride-4 mask grid, before upsampling.

The candidate's mask enters as a logit, and the head starts as the identity (center taps 1 on that channel, 0
elsewhere): an untrained head reproduces the de Geus merge exactly, and training only has to learn corrections.

Both convolutions are linear, so the response is a sum of per-channel terms. The shared channels (semantic
maps, depth) are therefore convolved once per thing class, and only the candidate's own mask per candidate:
the same numbers as convolving each candidate's full stack, without building an (N, C, h, w) tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

MASK_EPS = 1e-4  # masks are clamped to [eps, 1 - eps] before the logit, which keeps it finite (|logit| <= 9.2)


@dataclass(frozen=True)
class MergeHeadConfig:
    """kernel_size: of both convolutions, in stride-4 cells (5 -> a 9 x 9 cell = 36 x 36 pixel reach)."""

    kernel_size: int = 5

    def __post_init__(self) -> None:
        if not isinstance(self.kernel_size, int) or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"merge_head.kernel_size must be a positive odd integer, got {self.kernel_size!r}")


def context_maps(
    thing_masks: torch.Tensor,
    thing_channels: torch.Tensor,
    stuff_masks: torch.Tensor,
    stuff_channels: torch.Tensor,
    depth: torch.Tensor,
    num_thing: int,
    num_stuff: int,
) -> torch.Tensor:
    """The channels every candidate of an image shares: (num_thing + num_stuff + 1, h, w).

    thing_masks (N, h, w) probabilities with their thing channels (N,); stuff_masks (S, h, w) with their stuff
    channels (S,), at most one per channel; depth (h, w) normalized. Absent classes give zero maps.
    """
    height, width = depth.shape
    things = thing_masks.new_zeros(num_thing, height * width)
    index = thing_channels[:, None].expand(-1, height * width)
    things.scatter_reduce_(0, index, thing_masks.flatten(1), "amax")
    stuff = stuff_masks.new_zeros(num_stuff, height, width).index_copy_(0, stuff_channels, stuff_masks)
    return torch.cat((things.view(num_thing, height, width), stuff, depth[None]))


class MergeHead(nn.Module):
    """Per thing class: depthwise k x k conv over 1 + C context channels, k x k conv to one channel (a logit)."""

    def __init__(self, config: MergeHeadConfig, num_thing: int, num_stuff: int) -> None:
        super().__init__()
        self.config = config
        k = config.kernel_size
        channels = 1 + num_thing + num_stuff + 1  # own mask, thing semantics, stuff semantics, depth
        self.num_thing, self.num_stuff = num_thing, num_stuff
        self.depthwise = nn.Parameter(torch.zeros(num_thing, channels, k, k))
        self.depthwise_bias = nn.Parameter(torch.zeros(num_thing, channels))
        self.project = nn.Parameter(torch.zeros(num_thing, channels, k, k))
        self.project_bias = nn.Parameter(torch.zeros(num_thing))
        with torch.no_grad():  # identity on the own-mask channel: refine(mask) = mask before training
            self.depthwise[:, 0, k // 2, k // 2] = 1.0
            self.project[:, 0, k // 2, k // 2] = 1.0

    def forward(self, masks: torch.Tensor, thing_channels: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Refined-mask logits (N, h, w) of masks (N, h, w) probabilities of thing channels (N,) in a context
        (C, h, w) from context_maps."""
        height, width = masks.shape[-2:]
        pad = self.config.kernel_size // 2
        # Own mask: each candidate through every class's filters (candidates as the batch), then its class's
        # map picked. Costs num_thing x the one filter it needs, but keeps every shape static: ONNX-exportable
        # with a variable number of candidates (a grouped convolution would need one group per candidate).
        own = F.conv2d(
            torch.logit(masks, eps=MASK_EPS)[:, None], self.depthwise[:, :1], self.depthwise_bias[:, 0], padding=pad
        )
        own = F.conv2d(own, self.project[:, :1], padding=pad, groups=self.num_thing)
        own = own.gather(1, thing_channels[:, None, None, None].expand(-1, 1, height, width))[:, 0]
        # The shared channels through every class's filters: (num_thing * C) maps, then one per class.
        shared_channels = context.shape[0]
        shared = context[None].expand(self.num_thing, -1, -1, -1).reshape(1, -1, height, width)
        shared = F.conv2d(
            shared,
            self.depthwise[:, 1:].reshape(-1, 1, *self.depthwise.shape[-2:]),
            self.depthwise_bias[:, 1:].reshape(-1),
            padding=pad,
            groups=self.num_thing * shared_channels,
        )
        shared = F.conv2d(shared, self.project[:, 1:], self.project_bias, padding=pad, groups=self.num_thing)[0]
        return own + shared[thing_channels]
