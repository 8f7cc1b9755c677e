"""Panoptic FCN training targets from one panoptic id map (class id * label_divisor + instance, 0 = void).

Follows the reference implementation (dvlab-research/PanopticFCN ``GenerateGT``, Cityscapes fork settings):
each thing goes to every head level whose range contains sqrt(box area) in input pixels; its center is the center
of mass of its mask; the center map gets a Gaussian of CornerNet radius (min overlap 0.7) and sigma = diameter / 3,
peak 1 at the cell holding the center. Stuff targets are the per-cell class fraction with values < 0.5 zeroed.

Masks are resampled by exact cell fractions (the share of each stride-s cell a segment covers) rather than the
reference's bilinear interpolation: same values on cell-aligned shapes, and no dependence on sampling phase.
The map is first padded with void to a multiple of the coarsest stride, as the network pads its input, so every
level and the stride-4 mask grid nest exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.evaluation.pq import cityscapes_segments
from depth_panoptic_ros.panoptic.levels import FEATURE_STRIDE, HEAD_STRIDES, padded_size

CITYSCAPES_SCALE_RANGES = ((1.0, 128.0), (64.0, 256.0), (128.0, 512.0), (256.0, 1024.0), (512.0, 2048.0))


@dataclass(frozen=True)
class TargetConfig:
    """Defaults: Panoptic FCN's Cityscapes fork (scale ranges in input pixels, inclusive).

    strides and mask_stride are the network's (panoptic/levels.py); they are stated in configs and checked
    here so that a config written for another pyramid fails at load, not at the first loss.
    """

    strides: tuple[int, ...] = HEAD_STRIDES
    scale_ranges: tuple[tuple[float, float], ...] = CITYSCAPES_SCALE_RANGES
    min_overlap: float = 0.7
    sigma_factor: float = 3.0  # sigma = (2 * radius + 1) / sigma_factor
    mask_stride: int = FEATURE_STRIDE

    def __post_init__(self) -> None:
        if len(self.strides) != len(self.scale_ranges):
            raise ValueError(
                f"one scale range per level needed, got {len(self.strides)} strides and {len(self.scale_ranges)} ranges"
            )
        if tuple(self.strides) != HEAD_STRIDES:
            raise ValueError(
                f"strides must be the network's head-level strides {list(HEAD_STRIDES)} (P3..P7), "
                f"got {list(self.strides)}"
            )
        if self.mask_stride != FEATURE_STRIDE:
            raise ValueError(
                f"mask_stride must be the network's feature stride {FEATURE_STRIDE}, got {self.mask_stride}"
            )
        if not 0.0 < self.min_overlap < 1.0:
            raise ValueError(f"min_overlap must lie in (0, 1), got {self.min_overlap!r}")


@dataclass
class PanopticTargets:
    """Targets of one image, over the padded size (Hp, Wp); N thing instances.

    centers: per level (n_thing, Hp/s, Wp/s) Gaussian center heatmaps, channels in ClassTable.thing_indices order.
    stuff: per level (n_stuff, Hp/s, Wp/s) stuff class fraction per cell, < 0.5 zeroed (stuff_indices order).
    stuff_masks: (n_stuff, Hp/4, Wp/4) stuff class fraction per stride-4 cell (the stuff Dice target).
    thing_masks: (N, Hp/4, Wp/4) instance fraction per stride-4 cell (the thing Dice target).
    thing_channels: (N,) long, the instance's center-map channel.
    thing_levels: (N, n_levels) bool, the levels the instance is assigned to.
    depth_means: (N,) mean depth in meters over the instance's valid pixels, 0 where it has none.
    """

    centers: list[torch.Tensor]
    stuff: list[torch.Tensor]
    stuff_masks: torch.Tensor
    thing_masks: torch.Tensor
    thing_channels: torch.Tensor
    thing_levels: torch.Tensor
    depth_means: torch.Tensor

    def to(self, device: torch.device | str) -> PanopticTargets:
        return PanopticTargets(
            [c.to(device) for c in self.centers],
            [s.to(device) for s in self.stuff],
            self.stuff_masks.to(device),
            self.thing_masks.to(device),
            self.thing_channels.to(device),
            self.thing_levels.to(device),
            self.depth_means.to(device),
        )


def gaussian_radius(height: torch.Tensor, width: torch.Tensor, min_overlap: float = 0.7) -> torch.Tensor:
    """CornerNet's radius for boxes of the given size, as its code (and Panoptic FCN's copy) computes it.

    That code divides each quadratic's root by 2 instead of 2a; kept, since the published models trained with it.
    """
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + torch.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + torch.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return torch.minimum(r1, torch.minimum(r2, r3))


def _pad_to_network_input(x: torch.Tensor) -> torch.Tensor:
    """Zero (void / no depth) padding at the bottom and right, as the network pads its input."""
    height, width = x.shape[-2:]
    padded_height, padded_width = padded_size(height, width)
    return F.pad(x, (0, padded_width - width, 0, padded_height - height))


def _pixel_labels(ids: np.ndarray, class_table: ClassTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel its instance number (0..N-1) and its stuff channel, -1 elsewhere; and each instance's channel."""
    numbers, segments = cityscapes_segments(ids, class_table, "panoptic map")
    class_index = class_table.index_of_id[segments.category_ids]
    thing = class_table.is_thing[class_index]
    instance = thing & ~segments.iscrowd
    channel = np.empty(len(class_table), dtype=np.int64)
    channel[class_table.thing_indices] = np.arange(len(class_table.thing_indices))
    channel[class_table.stuff_indices] = np.arange(len(class_table.stuff_indices))
    instance_of = np.full(segments.ids.max(initial=0) + 1, -1, dtype=np.int64)
    instance_of[segments.ids[instance]] = np.arange(np.count_nonzero(instance))
    stuff_of = np.full_like(instance_of, -1)
    stuff_of[segments.ids[~thing]] = channel[class_index[~thing]]
    return np.take(instance_of, numbers), np.take(stuff_of, numbers), channel[class_index[instance]]


def _cell_fractions(labels: np.ndarray, count: int, stride: int) -> torch.Tensor:
    """(count, H/stride, W/stride): share of each stride x stride cell covered by each label (-1 = none)."""
    height, width = labels.shape
    rows, cols = height // stride, width // stride
    cell = (np.arange(height) // stride)[:, None] * cols + (np.arange(width) // stride)[None, :]
    hist = np.bincount(((labels + 1) * (rows * cols) + cell).ravel(), minlength=(count + 1) * rows * cols)
    return torch.from_numpy(hist[rows * cols :].reshape(count, rows, cols) / stride**2).float()


def _instance_geometry(labels: np.ndarray, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Center of mass (x, y) and box size (w, h) in pixels per instance, from its pixel counts per row and column."""
    height, width = labels.shape
    shifted = labels + 1  # 0 = no instance
    per_row = np.bincount((shifted * height + np.arange(height)[:, None]).ravel(), minlength=(count + 1) * height)
    per_col = np.bincount((shifted * width + np.arange(width)[None, :]).ravel(), minlength=(count + 1) * width)
    per_row, per_col = per_row.reshape(-1, height)[1:], per_col.reshape(-1, width)[1:]
    area = per_row.sum(axis=1)
    centers = np.stack([per_col @ np.arange(width), per_row @ np.arange(height)], axis=1) / area[:, None]
    rows_on, cols_on = per_row > 0, per_col > 0
    box_h = height - rows_on.argmax(axis=1) - rows_on[:, ::-1].argmax(axis=1)
    box_w = width - cols_on.argmax(axis=1) - cols_on[:, ::-1].argmax(axis=1)
    return torch.from_numpy(centers), torch.from_numpy(np.stack([box_w, box_h], axis=1).astype(np.float64))


def _center_maps(
    centers: torch.Tensor,
    sizes: torch.Tensor,
    channels: torch.Tensor,
    shape: tuple[int, int, int],
    stride: int,
    config: TargetConfig,
) -> torch.Tensor:
    """(n_thing, h, w): per class, the maximum of its instances' Gaussians (one vectorized map per instance)."""
    n_thing, height, width = shape
    cell = torch.div(centers, stride, rounding_mode="floor")  # (n, 2) x, y
    radius = gaussian_radius(sizes[:, 1] / stride, sizes[:, 0] / stride, config.min_overlap).clamp(min=0).floor()
    sigma = (2 * radius + 1) / config.sigma_factor
    dx = torch.arange(width)[None, None, :] - cell[:, 0, None, None]
    dy = torch.arange(height)[None, :, None] - cell[:, 1, None, None]
    r = radius[:, None, None]
    inside = (dx.abs() <= r) & (dy.abs() <= r)
    gauss = torch.exp(-(dx**2 + dy**2) / (2 * sigma[:, None, None] ** 2)) * inside
    heat = gauss.new_zeros(n_thing, height * width)
    index = channels[:, None].expand(-1, height * width)
    return heat.scatter_reduce_(0, index, gauss.flatten(1), "amax").reshape(shape).float()


def build_targets(
    panoptic_ids: np.ndarray | torch.Tensor,
    class_table: ClassTable,
    depth: np.ndarray | torch.Tensor | None = None,
    config: TargetConfig | None = None,
) -> PanopticTargets:
    """Targets of one (H, W) panoptic map; ``depth`` (H, W) in meters, 0 = invalid, gives the instance depths.

    Ids of classes outside the table are void; thing pixels without an instance number (crowd) get no target.
    Runs on CPU (data-loader workers); move the result with ``PanopticTargets.to``.
    """
    config = config or TargetConfig()
    ids = np.asarray(panoptic_ids)
    if ids.ndim != 2:
        raise ValueError(f"panoptic_ids must be (H, W), got shape {ids.shape}")
    padded_height, padded_width = padded_size(*ids.shape)
    pad = ((0, padded_height - ids.shape[0]), (0, padded_width - ids.shape[1]))
    instance_label, stuff_label, channels = _pixel_labels(np.pad(ids, pad), class_table)
    n_inst, height, width = len(channels), *instance_label.shape

    stuff_masks = _cell_fractions(stuff_label, len(class_table.stuff_indices), config.mask_stride)
    stuff_levels = []
    for stride in config.strides:
        fraction = F.avg_pool2d(stuff_masks[None], stride // config.mask_stride)[0]
        stuff_levels.append(torch.where(fraction < 0.5, 0.0, fraction))

    centers, sizes = _instance_geometry(instance_label, n_inst)
    scale = torch.sqrt(sizes[:, 0] * sizes[:, 1])
    ranges = torch.tensor(config.scale_ranges, dtype=torch.float64)
    levels = (scale[:, None] >= ranges[:, 0]) & (scale[:, None] <= ranges[:, 1])
    channels = torch.from_numpy(channels)
    center_maps = []
    for level, stride in enumerate(config.strides):
        pick = levels[:, level]
        shape = (len(class_table.thing_indices), height // stride, width // stride)
        center_maps.append(_center_maps(centers[pick], sizes[pick], channels[pick], shape, stride, config))

    depth_means = torch.zeros(n_inst)
    if depth is not None:
        depth = np.asarray(depth, dtype=np.float64)
        if depth.shape != ids.shape:
            raise ValueError(f"depth must match panoptic_ids {ids.shape}, got {depth.shape}")
        valid = np.pad(depth > 0, pad)
        shifted = np.where(valid, instance_label + 1, 0).ravel()
        total = np.bincount(shifted, np.pad(depth, pad).ravel(), minlength=n_inst + 1)[1:]
        count = np.bincount(shifted, minlength=n_inst + 1)[1:]
        depth_means = torch.from_numpy(np.divide(total, count, out=np.zeros(n_inst), where=count > 0)).float()

    thing_masks = _cell_fractions(instance_label, n_inst, config.mask_stride)
    return PanopticTargets(center_maps, stuff_levels, stuff_masks, thing_masks, channels, levels, depth_means)


def depth_at_mask_stride(depth: torch.Tensor, config: TargetConfig | None = None) -> torch.Tensor:
    """(B, 1, H, W) meters -> (B, 1, Hp/4, Wp/4): mean of the valid depth in each cell, 0 where none is valid.

    The depth the depth-aware Dice compares false positives with, on the grid of the network's masks.
    """
    config = config or TargetConfig()
    if depth.ndim != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must be (B, 1, H, W), got {tuple(depth.shape)}")
    depth = _pad_to_network_input(depth)
    total = F.avg_pool2d(depth.clamp(min=0), config.mask_stride)
    share = F.avg_pool2d((depth > 0).to(depth.dtype), config.mask_stride)
    return torch.where(share > 0, total / share.clamp(min=1e-12), 0.0)
