"""The depth-aware Panoptic FCN (Nguyen, Mehlretter, Rottensteiner), extending Panoptic FCN (Li et al. 2021)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from depth_panoptic_ros.panoptic.backbone import ResNet, load_imagenet_state_dict
from depth_panoptic_ros.panoptic.config import PanopticNetConfig
from depth_panoptic_ros.panoptic.fpn import FPN
from depth_panoptic_ros.panoptic.fusion import LateFusion
from depth_panoptic_ros.panoptic.heads import FeatureEncoder, KernelHead, PositionHead
from depth_panoptic_ros.panoptic.levels import ENCODER_LEVELS, FPN_STRIDES, HEAD_LEVELS, padded_size
from depth_panoptic_ros.panoptic.outputs import PanopticOutputs


class DepthAwarePanopticFCN(nn.Module):
    """Color ResNet + FPN and depth ResNet + FPN of the same architecture, fused per FPN level, then the
    Panoptic FCN heads: a stride-4 feature encoder on P2..P5, position and kernel heads on P3..P7.

    Depth input: one band, normalized by the caller with statistics of valid depth only, and invalid pixels
    (no measurement, < 1 m or > 500 m) set to 0 *after* normalization, i.e. to the mean depth. Holes thus
    read as "average, uninformative" rather than as an extreme distance that would fake depth edges, and
    the encoder learns around them; no separate validity band is added, so the ImageNet first convolution
    (averaged over RGB) still fits the single band. fusion "none" builds no depth branch and ignores ``depth``.

    The forward pass has no data-dependent Python control flow (torch.compile friendly): padding depends on
    the input shape only, and all selection of peaks and regions happens in PanopticInference.
    """

    def __init__(self, config: PanopticNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or PanopticNetConfig()
        self.color_backbone = ResNet(config.backbone, 3, config.frozen_bn)
        self.color_fpn = FPN(self.color_backbone.out_channels, config.fpn_channels)
        self.depth_backbone: ResNet | None = None
        self.depth_fpn: FPN | None = None
        self.fusion: LateFusion | None = None
        if config.fusion != "none":
            self.depth_backbone = ResNet(config.backbone, 1, config.frozen_bn)
            self.depth_fpn = FPN(self.depth_backbone.out_channels, config.fpn_channels)
            self.fusion = LateFusion(config.fusion, config.fpn_channels, num_levels=len(FPN_STRIDES))
        self.feature_encoder = FeatureEncoder(config.fpn_channels, config.head_channels, config.embed_dim)
        self.position_head = PositionHead(
            config.fpn_channels, config.head_channels, config.num_thing_classes, config.num_stuff_classes
        )
        self.kernel_head = KernelHead(config.fpn_channels, config.head_channels, config.embed_dim)

    def load_imagenet(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Initialize both encoders from one torchvision ImageNet checkpoint (as the paper did)."""
        load_imagenet_state_dict(self.color_backbone, state_dict)
        if self.depth_backbone is not None:
            load_imagenet_state_dict(self.depth_backbone, state_dict)

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor | None = None) -> PanopticOutputs:
        """rgb (B, 3, H, W) and depth (B, 1, H, W), both normalized; any H, W (padded to levels.SIZE_DIVISOR here)."""
        if rgb.ndim != 4 or rgb.shape[1] != 3:
            raise ValueError(f"rgb must be (B, 3, H, W), got {tuple(rgb.shape)}")
        height, width = rgb.shape[-2:]
        padded_height, padded_width = padded_size(height, width)
        pad = (0, padded_width - width, 0, padded_height - height)
        levels = self.color_fpn(self.color_backbone(F.pad(rgb, pad)))
        if self.fusion is not None:
            if depth is None or depth.shape != (rgb.shape[0], 1, height, width):
                expected = (rgb.shape[0], 1, height, width)
                got = None if depth is None else tuple(depth.shape)
                raise ValueError(f"depth must be {expected} for fusion {self.config.fusion!r}, got {got}")
            levels = self.fusion(levels, self.depth_fpn(self.depth_backbone(F.pad(depth, pad))))
        features = self.feature_encoder(levels[ENCODER_LEVELS])
        heads = levels[HEAD_LEVELS]
        centers, stuff = zip(*(self.position_head(level) for level in heads), strict=True)
        return PanopticOutputs(features, list(centers), list(stuff), [self.kernel_head(level) for level in heads])
