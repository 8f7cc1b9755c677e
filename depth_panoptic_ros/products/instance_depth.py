"""Instance-level depth (Panoptic-DepthLab): depth statistics and a 3D centroid for every panoptic segment.

All segments are measured together, never one mask per segment: the map's runs of equal ids give the pixel
counts and boxes and say where each segment's valid pixels lie, bincounts of the back-projected valid pixels give
the centroids, and selections (np.partition, O(n)) in each segment's valid depths the order statistics, with no
sort of all the pixels. Quantiles use numpy's default 'linear' definition: the median equals np.median and p10
equals np.percentile(..., 10) of the valid depths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.geometry.backproject import pixel_rays
from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.panoptic.result import PanopticResult
from depth_panoptic_ros.products.segments import SegmentRuns, segment_class_index


@dataclass
class InstanceDepthTable:
    """One row per panoptic segment (id != 0), sorted by panoptic id.

    bbox: (N, 4) int32 (x0, y0, x1, y1) half-open, so ``ids[y0:y1, x0:x1]`` is the segment's crop.
    depth_* and centroid (N, 3; camera optical frame, meters) are over the segment's pixels with valid depth;
    NaN where it has none (valid_count 0). score is 1.0 when no PanopticResult was given.
    """

    panoptic_id: np.ndarray
    class_id: np.ndarray
    class_index: np.ndarray
    instance_id: np.ndarray
    is_thing: np.ndarray
    score: np.ndarray
    pixel_count: np.ndarray
    valid_count: np.ndarray
    bbox: np.ndarray
    depth_mean: np.ndarray
    depth_median: np.ndarray
    depth_min: np.ndarray
    depth_p10: np.ndarray
    centroid: np.ndarray

    def __len__(self) -> int:
        return len(self.panoptic_id)

    def to_records(self, class_table: ClassTable) -> list[dict[str, Any]]:
        """JSON-ready rows (plain ints/floats/lists, NaN as None), each with its class name."""
        columns = {f.name: getattr(self, f.name).tolist() for f in fields(self)}
        names = [class_table.names[i] for i in columns["class_index"]]
        return [
            {"class_name": name, **{key: _json_safe(values[row]) for key, values in columns.items()}}
            for row, name in enumerate(names)
        ]


def instance_depth(
    panoptic_ids: np.ndarray | SegmentRuns,
    depth: np.ndarray,
    camera: CameraModel,
    class_table: ClassTable,
    scores: PanopticResult | None = None,
) -> InstanceDepthTable:
    """Depth statistics of every segment of ``panoptic_ids`` over its pixels whose depth is finite and > 0."""
    runs = SegmentRuns.of(panoptic_ids)
    (h, w), depth = runs.shape, np.asarray(depth, dtype=np.float32)
    if depth.shape != (h, w):
        raise ValueError(f"depth: expected shape {(h, w)} (that of panoptic_ids), got {depth.shape}")
    if camera.shape != (h, w):
        raise ValueError(f"camera: expected a {w}x{h} image, got {camera.width}x{camera.height}")
    segments, n = runs.segments, len(runs.segments)
    class_index = segment_class_index(segments, class_table)
    pixel_count, bbox = runs.extents()

    valid = (depth > 0) & (depth < np.inf)  # finite and positive (NaN compares False)
    grouped_pixel, bounds, run_order, per_run = _grouped_valid_pixels(runs, valid)
    valid_count = np.diff(bounds)
    z = np.take(depth, grouped_pixel)
    ray_x, ray_y = pixel_rays(camera)
    row = runs.start[run_order] // w
    xyz = (np.take(ray_x, grouped_pixel) * z, np.repeat(ray_y[row, 0], per_run[run_order]) * z, z)
    # Segment after segment, each in raster order, summed in float64 one value after the other: the same sums
    # as per-pixel bincounts, several times faster.
    has = valid_count > 0
    sums = np.zeros((n, 3))
    if has.any():
        sums[has] = np.stack([np.add.reduceat(c, bounds[:-1][has], dtype=np.float64) for c in xyz], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = sums / valid_count[:, None]
    median, minimum, p10 = _group_quantiles(z, bounds, (0.5, 0.0, 0.1))

    keep = segments != 0
    ids_kept = segments[keep]
    return InstanceDepthTable(
        panoptic_id=ids_kept.astype(np.int32),
        class_id=(ids_kept // class_table.label_divisor).astype(np.int32),
        class_index=class_index[keep],
        instance_id=(ids_kept % class_table.label_divisor).astype(np.int32),
        is_thing=class_table.is_thing[class_index[keep]],
        score=np.ones(len(ids_kept), np.float32) if scores is None else scores.score_of(ids_kept),
        pixel_count=pixel_count[keep],
        valid_count=valid_count[keep],
        bbox=bbox[keep].astype(np.int32),
        depth_mean=centroid[keep, 2].astype(np.float32),
        depth_median=median[keep],
        depth_min=minimum[keep],
        depth_p10=p10[keep],
        centroid=centroid[keep].astype(np.float32),
    )


def _grouped_valid_pixels(
    runs: SegmentRuns, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flat indices of the valid pixels of every non-void segment, segment after segment, each in raster order.

    Returns (indices, bounds (N + 1,): segment k's pixels are indices[bounds[k]:bounds[k + 1]], run order that
    groups the runs by segment, valid pixels per run). The runs say where each segment's pixels lie, so this is
    one gather instead of a sort of all the pixels; void runs count no pixels.
    """
    per_run = np.add.reduceat(valid.ravel(), runs.start, dtype=np.int64) if len(runs.start) else runs.start.copy()
    raster = np.flatnonzero(valid)  # the valid pixels of run r are raster[source[r]:source[r] + per_run[r]]
    source = np.cumsum(per_run) - per_run
    per_run[runs.segments[runs.segment] == 0] = 0
    order = np.argsort(runs.segment, kind="stable")
    count = per_run[order]
    target = np.cumsum(count) - count
    gather = np.repeat(source[order] - target, count)
    gather += np.arange(len(gather))
    bounds = np.append(0, np.cumsum(np.bincount(runs.segment, per_run, minlength=len(runs.segments)).astype(np.int64)))
    return np.take(raster, gather), bounds, order, per_run


def _group_quantiles(grouped: np.ndarray, bounds: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """(len(qs), N) float32 quantiles of groups grouped[bounds[k]:bounds[k + 1]]; NaN for an empty group.

    numpy's default 'linear' interpolation between the order statistics at floor and ceil of q * (count - 1).
    """
    first, count = bounds[:-1], np.diff(bounds)
    has = count > 0
    first, count = first[has], count[has]
    position = first + np.array(qs)[:, None] * (count - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, first + count - 1)
    ranked = _select(grouped, bounds, np.concatenate([below, above]))
    lo, hi = ranked[: len(qs)].astype(np.float64), ranked[len(qs) :]
    out = np.full((len(qs), len(has)), np.nan, dtype=np.float32)
    out[:, has] = lo + (position - below) * (hi - lo)
    return out


def _select(grouped: np.ndarray, bounds: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The values that sorting each group of ``grouped`` in place would put at ``positions``.

    Partitions instead of sorts: per group, one O(count) selection per wanted rank, from the highest down, each
    within the part below the previous one. ``grouped`` is reordered in place.
    """
    wanted = np.unique(positions)
    found = np.empty(len(wanted), grouped.dtype)
    group = np.searchsorted(bounds, wanted, side="right") - 1
    for k in np.unique(group):
        block = grouped[bounds[k] : bounds[k + 1]]
        for i in np.flatnonzero(group == k)[::-1]:
            rank = wanted[i] - bounds[k]
            block.partition(rank)
            found[i] = block[rank]
            block = block[:rank]
    return found[np.searchsorted(wanted, positions)]


def _json_safe(value: Any) -> Any:
    """NaN (and NaN inside lists) as None, because JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
