"""PanDepth-style learned depth completion on top of the classical fill, and PanDepth's depth -> semantics branch.

The network refines the classical (IP-Basic) completion rather than replacing it: it predicts a bounded
residual through a zero-initialized last layer, so an untrained model returns the classical depth exactly and a
trained one cannot stray far from it. Sparse LiDAR enters through normalized convolutions (Eldesokey et al.),
so a pixel without a measurement contributes nothing whatever value it holds, and the propagated confidence
tells the rest of the network how much measured support each pixel had.

As in PanDepth, sparse depth and image (+ optional semantic logits) are encoded separately, concatenated and
fused by a stack of fuse blocks. PanDepth's fuse blocks pair a 2D branch with a 3D branch on back-projected
points; here they are 2D only (dilated residual blocks at 1/4 resolution inside a small U-Net), which keeps
the model at a fraction of a million parameters; metric structure reaches them through the normalized
depth and confidence channels instead of a point branch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DepthCompletionConfig:
    """width: channels at full resolution (2x at 1/2 and 1/4); max_depth (m) scales depth inputs to ~[0, 1];
    residual_scale (m) bounds the correction: dense = max(init + residual_scale * tanh(.), 0).
    n_classes: semantic logit channels read when use_semantics (19 = Cityscapes)."""

    width: int = 32
    n_blocks: int = 4
    use_semantics: bool = False
    n_classes: int = 19
    max_depth: float = 80.0
    residual_scale: float = 10.0

    def __post_init__(self) -> None:
        for name in ("width", "n_blocks", "n_classes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"depth completion {name} must be a positive integer, got {value!r}")
        if self.width % 2:
            raise ValueError(f"depth completion width must be even (split between branches), got {self.width}")
        for name in ("max_depth", "residual_scale"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"depth completion {name} must be > 0 meters, got {value!r}")


class NormalizedConv2d(nn.Module):
    """Eldesokey et al.'s normalized convolution: conv(value * confidence) / conv(confidence) with non-negative
    weights, so missing inputs are interpolated over instead of read as zeros; the output confidence
    conv(confidence) / sum(weights) is the share of the kernel that had measured support."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, eps: float = 1e-8) -> None:
        super().__init__()
        # softplus keeps the effective weights positive; random raw values make the output channels differ
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.eps = eps

    def forward(self, value: torch.Tensor, confidence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # A normalization, so float32 whatever autocast asks for: 1e-8 is 0 in float16 (every pixel without
        # support would be 0 / 0 = NaN), and the gradient of the ratio grows as 1 / support, past float16's
        # 65504 where support is thin. Three small layers on the sparse input: the cost is negligible.
        with torch.autocast(value.device.type, enabled=False):
            value, confidence = value.float(), confidence.float()
            weight = F.softplus(self.weight)
            padding = self.weight.shape[-1] // 2
            support = F.conv2d(confidence, weight, padding=padding)
            # clamp rather than "+ eps": ONNX graph optimizers fold a tiny additive constant away (0 / 0 = NaN)
            out = F.conv2d(value * confidence, weight, padding=padding) / support.clamp_min(self.eps)
            return out + self.bias.view(1, -1, 1, 1), support / weight.sum(dim=(1, 2, 3)).view(1, -1, 1, 1)


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class _FuseBlock(nn.Module):
    """Dilated residual block; growing dilations let the 1/4-resolution bottleneck carry depth across the gaps
    between LiDAR rows and over untextured regions."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn_relu(channels, channels, dilation=dilation),
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class _SparseDepthEncoder(nn.Module):
    """Three 5x5 normalized convolutions (13x13 support): interpolated depth and its confidence per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([NormalizedConv2d(1 if i == 0 else channels, channels, 5) for i in range(3)])

    def forward(self, depth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        value, confidence = depth, valid
        for layer in self.layers:
            value, confidence = layer(value, confidence)
        return torch.cat([value, confidence], 1)


def _upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Resize to a skip connection's exact size, which is what makes any (odd) input size work unpadded."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class DepthCompletionNet(nn.Module):
    """forward(rgb, sparse, init_depth, semantic_logits=None) -> dense (B, 1, H, W) meters >= 0.

    rgb (B, 3, H, W) normalized; sparse (B, 1, H, W) meters, anything not finite and > 0 means "no
    measurement"; init_depth (B, 1, H, W) meters from the classical completion, 0 where unknown (the output
    there is the residual alone); semantic_logits (B, n_classes, h, w) at any resolution, required exactly
    when config.use_semantics.
    """

    def __init__(self, config: DepthCompletionConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        image_channels = 3 + (config.n_classes if config.use_semantics else 0)
        self.image_encoder = nn.Sequential(_conv_bn_relu(image_channels, w // 2), _conv_bn_relu(w // 2, w // 2))
        self.sparse_encoder = _SparseDepthEncoder(w // 2)
        # image features, sparse values + confidences, init depth and its validity
        self.stem = _conv_bn_relu(w // 2 + w + 2, w)
        self.down_half = _conv_bn_relu(w, 2 * w, stride=2)
        self.down_quarter = _conv_bn_relu(2 * w, 2 * w, stride=2)
        self.fuse = nn.Sequential(*(_FuseBlock(2 * w, dilation=2 ** (i % 4)) for i in range(config.n_blocks)))
        self.up_half = _conv_bn_relu(4 * w, w)
        self.up_full = _conv_bn_relu(2 * w, w)
        self.head = nn.Conv2d(w, 1, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(
        self,
        rgb: torch.Tensor,
        sparse: torch.Tensor,
        init_depth: torch.Tensor,
        semantic_logits: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self._check_inputs(rgb, sparse, init_depth, semantic_logits)
        max_depth = self.config.max_depth
        valid = torch.isfinite(sparse) & (sparse > 0)
        init_valid = torch.isfinite(init_depth) & (init_depth > 0)
        init = torch.where(init_valid, init_depth, 0.0)
        image = rgb
        if semantic_logits is not None:
            if semantic_logits.shape[-2:] != rgb.shape[-2:]:
                semantic_logits = _upsample_to(semantic_logits, rgb)
            image = torch.cat([rgb, semantic_logits], 1)
        features = [
            self.image_encoder(image),
            self.sparse_encoder(torch.where(valid, sparse, 0.0) / max_depth, valid.to(rgb.dtype)),
            init / max_depth,
            init_valid.to(rgb.dtype),
        ]
        full = self.stem(torch.cat(features, 1))
        half = self.down_half(full)
        x = self.fuse(self.down_quarter(half))
        x = self.up_half(torch.cat([_upsample_to(x, half), half], 1))
        x = self.up_full(torch.cat([_upsample_to(x, full), full], 1))
        return F.relu(init + self.config.residual_scale * torch.tanh(self.head(x)))

    def _check_inputs(
        self,
        rgb: torch.Tensor,
        sparse: torch.Tensor,
        init_depth: torch.Tensor,
        semantic_logits: torch.Tensor | None,
    ) -> None:
        if rgb.ndim != 4 or rgb.shape[1] != 3:
            raise ValueError(f"depth completion rgb must be (B, 3, H, W), got {tuple(rgb.shape)}")
        b, _, h, w = rgb.shape
        for name, tensor in (("sparse", sparse), ("init_depth", init_depth)):
            if tensor.shape != (b, 1, h, w):
                raise ValueError(
                    f"depth completion {name} must be (B, 1, H, W) = {(b, 1, h, w)}, got {tuple(tensor.shape)}"
                )
        if not self.config.use_semantics:
            if semantic_logits is not None:
                raise ValueError("depth completion got semantic_logits but was built with use_semantics=False")
            return
        expected = f"(B, n_classes, h, w) = ({b}, {self.config.n_classes}, h, w)"
        if semantic_logits is None:
            raise ValueError(f"depth completion was built with use_semantics=True: semantic_logits {expected} needed")
        if semantic_logits.ndim != 4 or semantic_logits.shape[:2] != (b, self.config.n_classes):
            raise ValueError(f"depth completion semantic_logits must be {expected}, got {tuple(semantic_logits.shape)}")


class JointRefiner(nn.Module):
    """PanDepth's joint branch: completed depth + semantic logits -> 4 convs -> refined logits.

    Depth edges and depth-consistent regions sharpen class boundaries. The refinement is a residual with a
    zero-initialized last conv, so attaching it to a trained segmenter starts as the identity.
    forward(depth, logits): depth (B, 1, H, W) normalized (e.g. meters / max_depth), logits (B, n_classes, H, W).
    """

    def __init__(self, n_classes: int, width: int = 64) -> None:
        super().__init__()
        if n_classes < 1 or width < 1:
            raise ValueError(f"joint refiner n_classes and width must be >= 1, got {n_classes} and {width}")
        self.n_classes = n_classes
        last = nn.Conv2d(width, n_classes, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.delta = nn.Sequential(
            _conv_bn_relu(n_classes + 1, width), _conv_bn_relu(width, width), _conv_bn_relu(width, width), last
        )

    def forward(self, depth: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 4 or logits.shape[1] != self.n_classes:
            raise ValueError(f"joint refiner logits must be (B, {self.n_classes}, H, W), got {tuple(logits.shape)}")
        if depth.shape != (logits.shape[0], 1, *logits.shape[2:]):
            raise ValueError(
                f"joint refiner depth must be (B, 1, H, W) = {(logits.shape[0], 1, *logits.shape[2:])} like the "
                f"logits, got {tuple(depth.shape)}"
            )
        return logits + self.delta(torch.cat([depth, logits], 1))
