"""Instance-level depth (Panoptic-DepthLab): depth statistics and a 3D centroid for every panoptic segment.

All segments are measured together, never one mask per segment: the map's runs of equal ids give the pixel
counts and boxes, and one compiled kernel (instance_depth_compiled.py) walks the runs for the float64 sums of the
back-projected valid pixels (the centroids) and selects the order statistics in each segment's valid depths
(O(n), no sort of all the pixels). Quantiles use numpy's default 'linear' definition: the median equals np.median
and p10 equals np.percentile(..., 10) of the valid depths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.geometry.backproject import pixel_rays
from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.panoptic.result import PanopticResult
from depth_panoptic_ros.products.instance_depth_compiled import segment_statistics
from depth_panoptic_ros.products.segments import SegmentRuns, segment_class_index
from depth_panoptic_ros.scratch import Scratch

if TYPE_CHECKING:
    import torch

_QUANTILES = np.array([0.5, 0.0, 0.1])  # median, minimum, p10
_SCRATCH = Scratch()


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
    device_ids: torch.Tensor | None = None,
) -> InstanceDepthTable:
    """Depth statistics of every segment of ``panoptic_ids`` over its pixels whose depth is finite and > 0.

    ``device_ids``: the same map as a tensor on the model's device (PanopticResult.device_ids of a GPU model):
    the statistics are then computed there (instance_depth_device.py); counts, boxes and quantiles are the same,
    a centroid can differ in the last bit of its float32 value."""
    runs = SegmentRuns.of(panoptic_ids)
    (h, w), depth = runs.shape, np.asarray(depth, dtype=np.float32)
    if depth.shape != (h, w):
        raise ValueError(f"depth: expected shape {(h, w)} (that of panoptic_ids), got {depth.shape}")
    if camera.shape != (h, w):
        raise ValueError(f"camera: expected a {w}x{h} image, got {camera.width}x{camera.height}")
    segments, n = runs.segments, len(runs.segments)
    class_index = segment_class_index(segments, class_table)
    pixel_count, bbox = runs.extents()

    void = 0 if n and segments[0] == 0 else -1  # sorted ids: void, when present, comes first
    if device_ids is not None:
        from depth_panoptic_ros.products.instance_depth_device import device_segment_statistics

        if tuple(device_ids.shape) != (h, w):
            got = tuple(device_ids.shape)
            raise ValueError(f"device_ids: expected shape {(h, w)} (that of panoptic_ids), got {got}")
        valid_count, sums, ranked = device_segment_statistics(device_ids, depth, camera, segments, void, _QUANTILES)
    else:
        ray_x, ray_y = pixel_rays(camera)
        valid_count, sums = np.empty(n, np.int64), np.empty((n, 3))
        ranked = np.empty((len(_QUANTILES), n), np.float32)
        segment_statistics(
            *(depth, ray_x, ray_y, runs.start, runs.length, runs.segment, pixel_count, void, _QUANTILES),
            *(valid_count, sums, _SCRATCH.array("grouped", (h * w,), np.float32), ranked),
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = sums / valid_count[:, None]
    median, minimum, p10 = ranked

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


def _json_safe(value: Any) -> Any:
    """NaN (and NaN inside lists) as None, because JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
