"""Training augmentation of the depth-aware paper: random scale f in [0.5, 2] with depth divided by f, a crop
(padded with void where the scaled image is smaller), horizontal flip; depth outside [min, max] is invalid.

Dividing depth by f keeps apparent size and depth consistent: an object shown f times larger looks like one
f times closer. Each kind of map is resampled so that no value is invented:

- panoptic ids and ground-truth depth by nearest neighbor on the same grid, so every label keeps its own
  depth (the depth-aware Dice compares a mask with its instance's mean depth);
- measured depth stays a set of points: zoomed in, each point lands on the one pixel holding its scaled
  center (the gaps grow, as they would for a LiDAR seen by a longer lens); zoomed out, the nearest of the
  points falling into a pixel wins, as a z-buffer would decide. No value is interpolated across holes.

Augmented samples carry no camera: after depth / f no pinhole model describes them (training needs none).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from depth_panoptic_ros.data.photometric import PhotometricConfig, photometric
from depth_panoptic_ros.data.sample import Sample


@dataclass(frozen=True)
class AugmentConfig:
    """Published defaults: scale [0.5, 2], 512 x 1024 crops, flips; depth valid in [1, 500] m."""

    scale_range: tuple[float, float] = (0.5, 2.0)
    crop_size: tuple[int, int] = (512, 1024)  # (height, width)
    flip: bool = True
    min_depth: float = 1.0
    max_depth: float = 500.0
    photometric: PhotometricConfig = field(default_factory=PhotometricConfig)  # off by default

    def __post_init__(self) -> None:
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {self.scale_range}")
        if len(self.crop_size) != 2 or min(self.crop_size) < 1:
            raise ValueError(f"crop_size must be (height, width) of positive ints, got {self.crop_size}")
        if not 0 <= self.min_depth < self.max_depth:
            raise ValueError(f"need 0 <= min_depth < max_depth, got {self.min_depth} and {self.max_depth}")


def augment(sample: Sample, config: AugmentConfig, rng: np.random.Generator) -> Sample:
    """Scale, crop (with padding), maybe flip, then the photometric changes, each drawn from ``rng``; depth out of
    range set to 0."""
    scaled = scale_sample(sample, float(rng.uniform(*config.scale_range)))
    height, width = config.crop_size
    y = int(rng.integers(0, max(scaled.rgb.shape[0] - height, 0) + 1))
    x = int(rng.integers(0, max(scaled.rgb.shape[1] - width, 0) + 1))
    out = crop_sample(scaled, y, x, height, width)
    if config.flip and rng.random() < 0.5:
        out = flip_sample(out)
    if config.photometric.active:
        out = replace(out, rgb=photometric(out.rgb, config.photometric, rng))
    for depth in (out.sparse, out.depth):
        depth[(depth < config.min_depth) | (depth > config.max_depth)] = 0
    return out


def scale_sample(sample: Sample, factor: float) -> Sample:
    """The sample zoomed by ``factor``: images resized, every depth divided by ``factor``."""
    if not factor > 0:
        raise ValueError(f"scale factor must be > 0, got {factor}")
    height, width = (max(round(n * factor), 1) for n in sample.rgb.shape[:2])
    size = (width, height)
    rgb = cv2.resize(sample.rgb, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    panoptic = None
    if sample.panoptic is not None:
        panoptic = cv2.resize(sample.panoptic, size, interpolation=cv2.INTER_NEAREST_EXACT)
    depth = cv2.resize(sample.depth, size, interpolation=cv2.INTER_NEAREST_EXACT) / np.float32(factor)
    sparse = resize_sparse_depth(sample.sparse, height, width) / np.float32(factor)
    return replace(sample, rgb=rgb, sparse=sparse, depth=depth, panoptic=panoptic, camera=None)


def resize_sparse_depth(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Measured depth (0 = none) on a ``height`` x ``width`` grid, values kept exactly, never blended.

    Source pixel center c lands in target pixel floor(s * (c + 0.5)), s = new size / old size, per axis. For
    s >= 1 that map is one-to-one (a scatter); for s <= 1 every target pixel receives a contiguous run of
    sources and keeps their smallest valid depth (min-reductions over the runs, rows then columns).
    """
    out = np.where(depth > 0, depth, np.float32(np.inf)).astype(np.float32, copy=False)
    for axis, size in ((0, height), (1, width)):
        old = out.shape[axis]
        target = np.floor(size / old * (np.arange(old) + 0.5)).astype(np.int64)
        if size >= old:
            grid = np.full((size, out.shape[1]) if axis == 0 else (out.shape[0], size), np.inf, np.float32)
            index = [slice(None), slice(None)]
            index[axis] = target
            grid[tuple(index)] = out
            out = grid
        else:
            starts = np.flatnonzero(np.diff(target, prepend=-1))
            out = np.minimum.reduceat(out, starts, axis=axis)
    return np.where(np.isfinite(out), out, np.float32(0))


def crop_sample(sample: Sample, y: int, x: int, height: int, width: int) -> Sample:
    """The window [y, y + height) x [x, x + width); where it leaves the image: black, void and no depth."""
    if y < 0 or x < 0 or height < 1 or width < 1:
        raise ValueError(f"crop needs y, x >= 0 and a positive size, got y={y} x={x} {height}x{width}")

    def window(array: np.ndarray) -> np.ndarray:
        out = np.zeros((height, width, *array.shape[2:]), array.dtype)
        part = array[y : y + height, x : x + width]
        out[: part.shape[0], : part.shape[1]] = part
        return out

    panoptic = None if sample.panoptic is None else window(sample.panoptic)
    return replace(
        sample,
        rgb=window(sample.rgb),
        sparse=window(sample.sparse),
        depth=window(sample.depth),
        panoptic=panoptic,
        camera=None,
    )


def flip_sample(sample: Sample) -> Sample:
    """Mirrored left to right (ids and depths unchanged)."""
    panoptic = None if sample.panoptic is None else np.ascontiguousarray(sample.panoptic[:, ::-1])
    return replace(
        sample,
        rgb=np.ascontiguousarray(sample.rgb[:, ::-1]),
        sparse=np.ascontiguousarray(sample.sparse[:, ::-1]),
        depth=np.ascontiguousarray(sample.depth[:, ::-1]),
        panoptic=panoptic,
        camera=None,
    )
