"""Instance-level depth (Panoptic-DepthLab): depth statistics and a 3D centroid for every panoptic segment.

All segments are measured in one vectorised pass over the image: per-row / per-column histograms of segment
membership give the pixel counts and boxes, bincounts of the back-projected valid pixels the centroids, and a
single sort of the valid pixels by (segment, depth) the order statistics. Quantiles use numpy's default
'linear' definition: the median equals np.median and p10 equals np.percentile(..., 10) of the valid depths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.geometry.backproject import backproject
from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.panoptic.result import PanopticResult
from depth_panoptic_ros.products.segments import check_panoptic_ids, segment_class_index, segment_inverse


@dataclass
class InstanceDepthTable:
    """One row per panoptic segment (id != 0), sorted by panoptic id.

    bbox: (N, 4) int32 (x0, y0, x1, y1) half-open, so ``ids[y0:y1, x0:x1]`` is the segment's crop.
    depth_* and centroid (N, 3; camera optical frame, metres) are over the segment's pixels with valid depth;
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
    panoptic_ids: np.ndarray,
    depth: np.ndarray,
    camera: CameraModel,
    class_table: ClassTable,
    scores: PanopticResult | None = None,
) -> InstanceDepthTable:
    """Depth statistics of every segment of ``panoptic_ids`` over its pixels whose depth is finite and > 0."""
    ids = check_panoptic_ids(panoptic_ids)
    depth = np.asarray(depth, dtype=np.float32)
    if depth.shape != ids.shape:
        raise ValueError(f"depth: expected shape {ids.shape} (that of panoptic_ids), got {depth.shape}")
    if camera.shape != ids.shape:
        raise ValueError(f"camera: expected a {ids.shape[1]}x{ids.shape[0]} image, got {camera.width}x{camera.height}")
    segments, inverse = segment_inverse(ids)
    class_index = segment_class_index(segments, class_table)

    n, (h, w) = len(segments), ids.shape
    rows = _membership_histogram(np.arange(h)[:, None] * n + inverse, (h, n))
    cols = _membership_histogram(np.arange(w)[None, :] * n + inverse, (w, n))
    y0, y1 = _occupied_span(rows)
    x0, x1 = _occupied_span(cols)

    valid = np.isfinite(depth) & (depth > 0) & (ids != 0)
    xyz = backproject(depth, camera)
    group = inverse[valid]
    coords = [xyz[..., k][valid] for k in range(3)]  # per channel: 5x faster than masking (H, W, 3) at once
    valid_count = np.bincount(group, minlength=n)
    sums = np.stack([np.bincount(group, c, minlength=n) for c in coords], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = sums / valid_count[:, None]
    z_sorted = _sort_by_group_then_value(group, coords[2])
    starts = np.cumsum(valid_count) - valid_count

    keep = segments != 0
    ids_kept = segments[keep]
    return InstanceDepthTable(
        panoptic_id=ids_kept.astype(np.int32),
        class_id=(ids_kept // class_table.label_divisor).astype(np.int32),
        class_index=class_index[keep],
        instance_id=(ids_kept % class_table.label_divisor).astype(np.int32),
        is_thing=class_table.is_thing[class_index[keep]],
        score=np.ones(len(ids_kept), np.float32) if scores is None else scores.score_of(ids_kept),
        pixel_count=rows.sum(axis=0)[keep],
        valid_count=valid_count[keep],
        bbox=np.stack([x0, y0, x1, y1], axis=1)[keep].astype(np.int32),
        depth_mean=centroid[keep, 2].astype(np.float32),
        depth_median=_group_quantile(z_sorted, starts, valid_count, 0.5)[keep],
        depth_min=_group_quantile(z_sorted, starts, valid_count, 0.0)[keep],
        depth_p10=_group_quantile(z_sorted, starts, valid_count, 0.1)[keep],
        centroid=centroid[keep].astype(np.float32),
    )


def _membership_histogram(keys: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels per (row or column, segment) from keys = position * n + segment: one bincount over the image
    instead of one full-size mask per segment."""
    return np.bincount(keys.ravel(), minlength=shape[0] * shape[1]).reshape(shape)


def _occupied_span(histogram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-open [first, last + 1) of the non-empty bins of each column of a (bins, n) histogram."""
    occupied = histogram > 0
    return occupied.argmax(axis=0), len(occupied) - occupied[::-1].argmax(axis=0)


def _sort_by_group_then_value(group: np.ndarray, value: np.ndarray) -> np.ndarray:
    """``value`` ordered by (group, value), as np.lexsort((value, group)) would, with one int64 sort.

    Positive float32s order like their bit patterns read as int32, so (group << 32 | bits) sorts exactly by
    (group, value); this is ~5x faster than lexsort on a dense 1024x2048 depth map.
    """
    key = np.sort((group.astype(np.int64) << 32) | value.view(np.int32))
    return (key & 0xFFFFFFFF).astype(np.int32).view(np.float32)


def _group_quantile(sorted_values: np.ndarray, starts: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """Per-group quantile with numpy's 'linear' interpolation over groups laid out consecutively; NaN if empty."""
    out = np.full(len(counts), np.nan, dtype=np.float32)
    has = counts > 0
    first, count = starts[has], counts[has]
    position = first + q * (count - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, first + count - 1)
    lo, hi = sorted_values[below].astype(np.float64), sorted_values[above]
    out[has] = lo + (position - below) * (hi - lo)
    return out


def _json_safe(value: Any) -> Any:
    """NaN (and NaN inside lists) as None, because JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
