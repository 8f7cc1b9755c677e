"""The thing geometry check: things must stand on the ground and rise to a height their class can have.

Most false things of the synthetic-trained model on real streets are compact blobs on walls, tree crowns and
the road surface (BENCHMARKS.md, "Thing geometry"). The depth says what the appearance does not: a thing whose
lowest points float above the ground, whose highest stay on the road, or that towers above any object of its
class is not one. The merges run the check on each instance as it stands after the thing competition and the
fragment step, reading its pixels at the centers of the stride-4 grid's cells against their heights above the
ground (geometry/ground.py); a failing instance leaves its pixels to stuff, as a fragment does (on a CPU its
runs are painted, panoptic/fragments.py; a GPU looks every pixel up). On a GPU the check makes the host wait
twice (panoptic/sync_free.py): for the copy of the frame's grids to the device, and for the index of the cells
whose heights it judges.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.geometry.ground import grid_index
from depth_panoptic_ros.panoptic.levels import FEATURE_STRIDE
from depth_panoptic_ros.panoptic.sync_free import label_counts

LOW_QUANTILE, HIGH_QUANTILE = 0.05, 0.95  # a thing's "lowest" and "highest" points, robust to stray pixels
HIDDEN_REL = 0.1  # the cell under a thing's bottom edge is an occluder when it is this much nearer


@dataclass(frozen=True)
class ClassShape:
    """What a thing class can be: max_height_m, its tallest (with a margin); min_height_m, a floor lower than
    the config's for low things (None = the config's); grounded: it touches the ground (a rider's lowest points
    are on the pedals)."""

    max_height_m: float
    min_height_m: float | None = None
    grounded: bool = True


# Cityscapes thing classes: vans and SUVs are cars, double-deck buses and trams reach ~4.4 m, a bicycle's pixels
# are mostly wheels (its 95th percentile ~0.7 m). Classes not listed are checked against the config only.
CLASS_SHAPES = {
    "person": ClassShape(2.3),
    "rider": ClassShape(2.5, grounded=False),
    "car": ClassShape(3.0),
    "truck": ClassShape(4.5),
    "bus": ClassShape(4.5),
    "train": ClassShape(5.0),
    "motorcycle": ClassShape(2.0, min_height_m=0.5),
    "bicycle": ClassShape(2.0, min_height_m=0.5),
}


@dataclass(frozen=True)
class ThingGeometryConfig:
    """enabled: drop thing candidates whose geometry is implausible (needs depth and a ground plane: the
    frame's LiDAR, else its ground transform; frames with neither are not checked). max_ground_gap_m: the
    thing's lowest points (5th percentile of its heights above the ground) may float at most this high, unless
    a nearer object hides its bottom edge; min_height_m: its highest points (95th percentile) must reach at
    least this (a thing is not flat on the road); class limits beside them: CLASS_SHAPES. Defaults chosen by
    leave-one-frame-out on the labeled KITTI frames (BENCHMARKS.md)."""

    enabled: bool = True
    max_ground_gap_m: float = 0.2
    min_height_m: float = 0.8

    def __post_init__(self) -> None:
        for name in ("max_ground_gap_m", "min_height_m"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
                raise ValueError(f"things.{name} must be a number >= 0, got {value!r}")


@dataclass(frozen=True)
class ThingGeometryCheck:
    """One frame's check: ``depth`` (float32 meters, 0 = unknown) and ``heights`` (float32, NaN = unknown)
    above the ground of the pixels at the centers of the FEATURE_STRIDE grid's cells over the image
    (geometry/ground.py: grid_depth, grid_heights), and the limits."""

    depth: np.ndarray
    heights: np.ndarray
    config: ThingGeometryConfig


@lru_cache(maxsize=8)
def class_limits(
    names: tuple[str, ...], config: ThingGeometryConfig, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per class name: the lowest height its top may have, the tallest, and whether it must touch the ground.
    Kept per class table, config and device: the same three small tensors serve every frame."""
    shapes = [CLASS_SHAPES.get(name, ClassShape(float("inf"))) for name in names]
    floor = [
        config.min_height_m if s.min_height_m is None else min(s.min_height_m, config.min_height_m) for s in shapes
    ]
    return (
        torch.tensor(floor, device=device),
        torch.tensor([s.max_height_m for s in shapes], device=device),
        torch.tensor([s.grounded for s in shapes], device=device),
    )


def label_quantiles(
    labels: torch.Tensor, count: int, heights: torch.Tensor, quantiles: tuple[float, ...]
) -> torch.Tensor:
    """(h, w) int labels in [0, count) (-1 = none) and (h, w) heights (NaN = unknown) -> (count, len(quantiles))
    height quantiles of each label's known pixels (the lowest value with at least ceil(q * n) of its n values at
    or below it, numpy's 'inverted_cdf'); NaN for a label without a known pixel. Two sorts of the known cells
    serve every label: by height, then stably by label. Selecting those cells is one synchronization on a GPU;
    sorting the whole grid instead would cost ~2 ms more on a CPU."""
    known = ((labels >= 0) & ~torch.isnan(heights)).flatten().nonzero()[:, 0]
    values, order = heights.flatten()[known].sort()
    labels_sorted, by_label = labels.flatten()[known][order].long().sort(stable=True)
    values = values[by_label]
    total = label_counts(labels_sorted, count)
    start = total.cumsum(0) - total
    q = _quantile_levels(quantiles, labels.device)
    rank = torch.ceil(q[None, :] * total[:, None]).clamp_min(1).long() - 1
    if len(values) == 0:
        return torch.full(rank.shape, torch.nan, device=labels.device)
    found = values[(start[:, None] + rank).clamp_max(len(values) - 1)]
    return torch.where(total[:, None] > 0, found, torch.nan)


@lru_cache(maxsize=8)
def _quantile_levels(quantiles: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """Built once per device: a tensor of host numbers is a copy that waits for a GPU."""
    return torch.tensor(quantiles, dtype=torch.float64, device=device)


def hidden_bottoms(labels: torch.Tensor, count: int, depth: torch.Tensor) -> torch.Tensor:
    """(count,) bool: whether most of each label's bottom edge (its cells whose lower neighbor is another label)
    lies on the image's last row or over a nearer object (depth HIDDEN_REL nearer): then its lowest visible
    points say nothing about where it meets the ground. ``depth`` (h, w) meters, 0 = unknown."""
    here, below = labels[:-1], labels[1:]
    edge = (here >= 0) & (here != below)
    nearer = (depth[1:] > 0) & (depth[1:] < depth[:-1] * (1 - HIDDEN_REL))
    last = _counts_where(labels[-1], labels[-1] >= 0, count)
    edges = _counts_where(here, edge, count) + last
    hidden = _counts_where(here, edge & nearer, count) + last
    return (edges > 0) & (2 * hidden >= edges)


def _counts_where(labels: torch.Tensor, where: torch.Tensor, count: int) -> torch.Tensor:
    """(count,) how many cells of each label in [0, count) ``where`` holds: the others are counted in an extra
    bin and dropped, so that no boolean selection waits for a GPU."""
    return label_counts(torch.where(where, labels, count), count + 1)[:count]


def plausible_things(
    labels: torch.Tensor, classes: torch.Tensor, class_table: ClassTable, check: ThingGeometryCheck
) -> torch.Tensor:
    """(N,) bool: which of N things, each the cells of its index in the (h, w) ``labels`` grid (-1 = none) and of
    class index ``classes`` (N,), pass ``check``. A thing without a cell of known height is kept: what cannot be
    measured is not judged."""
    device = labels.device
    # the frame's two grids in one copy to the device (float32, as ThingGeometryCheck holds them)
    grids = np.stack((check.heights, check.depth)).astype(np.float32, copy=False)
    heights, depth = torch.from_numpy(grids).to(device)
    count = len(classes)
    low, high = label_quantiles(labels, count, heights, (LOW_QUANTILE, HIGH_QUANTILE)).unbind(1)
    limits = class_limits(tuple(class_table.names), check.config, device)
    floor, ceiling, grounded = (limit[classes] for limit in limits)
    hidden = hidden_bottoms(labels, count, depth)
    floats = grounded & ~hidden & (low > check.config.max_ground_gap_m)
    return ~(floats | (high < floor) | (high > ceiling))


def failing_things(
    owner: torch.Tensor,
    given_back: torch.Tensor,
    classes: torch.Tensor,
    class_table: ClassTable,
    check: ThingGeometryCheck,
) -> torch.Tensor:
    """(N,) bool: which instances fail ``check``, judged on their pixels that are not ``given_back`` (bool (H, W),
    e.g. their fragments). ``owner`` (H, W) holds each pixel's mask index (-1 where no thing is), ``classes`` each
    mask's class index. Only the grid's cells are read. ValueError when the check's grid is not the image's."""
    height, width = owner.shape
    grid = (-(-height // FEATURE_STRIDE), -(-width // FEATURE_STRIDE))
    if check.heights.shape != grid or check.depth.shape != grid:
        raise ValueError(
            f"thing geometry check: depth {check.depth.shape} and heights {check.heights.shape} grids are not the "
            f"{grid[0]}x{grid[1]} grid of a {height}x{width} image"
        )
    rows, cols = (_grid_index_on(length, owner.device) for length in (height, width))
    sampled = torch.where(given_back[rows][:, cols], -1, owner[rows][:, cols])
    return ~plausible_things(sampled, classes, class_table, check)


@lru_cache(maxsize=16)
def _grid_index_on(length: int, device: torch.device) -> slice | torch.Tensor:
    """grid_index for a tensor on ``device``: slices as they are (a view), sample arrays as tensors built once per
    length and device (each build would be a copy that waits for a GPU)."""
    index = grid_index(length, FEATURE_STRIDE)
    return index if isinstance(index, slice) else torch.as_tensor(index, device=device)
