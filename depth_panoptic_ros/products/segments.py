"""Segment lookup shared by the per-frame products: which segment each pixel belongs to.

A panoptic map is piecewise constant: a 1024x2048 map of tens of segments breaks into a few thousand horizontal
runs of equal ids. Finding the segments, painting per-segment values and measuring boxes from the runs costs one
comparison per pixel instead of a sort, hash or histogram of all pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.products.segments_compiled import ID_TYPES, boundary_pixels, run_extents, run_starts
from depth_panoptic_ros.scratch import Scratch

_SCRATCH = Scratch()


def check_panoptic_ids(panoptic_ids: np.ndarray) -> np.ndarray:
    """The map as an (H, W) non-negative integer array, or a ValueError saying what was passed instead."""
    ids = np.asarray(panoptic_ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"panoptic_ids: expected an (H, W) integer array, got shape {ids.shape} dtype {ids.dtype}")
    if ids.size and ids.min() < 0:
        raise ValueError(f"panoptic_ids: expected ids >= 0 (0 = void), got minimum {ids.min()}")
    return ids


@dataclass(frozen=True)
class SegmentRuns:
    """A panoptic map as row-wise runs of equal ids; runs never cross a row end.

    segments: (N,) sorted ids present in the map; start: (R,) flat index of each run's first pixel, increasing;
    length: (R,) pixels per run; segment: (R,) index into ``segments`` of each run.
    """

    shape: tuple[int, int]
    segments: np.ndarray
    start: np.ndarray
    length: np.ndarray
    segment: np.ndarray

    @classmethod
    def of(cls, panoptic_ids: np.ndarray | SegmentRuns) -> SegmentRuns:
        """The runs of a map, checked as check_panoptic_ids does; runs are returned as they are, so that the
        products of one frame can share them."""
        if isinstance(panoptic_ids, SegmentRuns):
            return panoptic_ids
        ids = check_panoptic_ids(panoptic_ids)
        if ids.dtype not in ID_TYPES:
            ids = ids.astype(np.int64)
        found = _SCRATCH.array("starts", (ids.size,), np.int64)
        start = found[: run_starts(ids, found)].copy()
        first = ids.ravel()[start]
        # np.unique's return_inverse took ~1.3 ms for the ~14 k runs of a real 1024x2048 map, a sort and a
        # binary search ~0.15 ms
        segments = np.unique(first)
        return cls(ids.shape, segments, start, np.diff(start, append=ids.size), np.searchsorted(segments, first))

    def paint(self, values: np.ndarray) -> np.ndarray:
        """(H, W, ...) map holding ``values[k]`` on the pixels of segment k."""
        values = np.asarray(values)
        return np.repeat(values[self.segment], self.length, axis=0).reshape(self.shape + values.shape[1:])

    def extents(self) -> tuple[np.ndarray, np.ndarray]:
        """(pixel count (N,) int64, box (N, 4) int64 x0, y0, x1, y1 half-open) of each segment, in one walk over
        the runs (segments_compiled.run_extents: a stable sort of the ~12 k runs of a real KITTI map and five
        reductions took ~0.5 ms)."""
        count, box = np.empty(len(self.segments), np.int64), np.empty((len(self.segments), 4), np.int64)
        run_extents(self.start, self.length, self.segment, self.shape[1], count, box)
        return count, box

    @cached_property
    def boundary_pixels(self) -> np.ndarray:
        """Ascending flat indices of the pixels whose right or lower neighbor has another id (outlines).

        Found from the runs, never from the pixels (segments_compiled.py): between rows r and r + 1 the ids can
        only change where a run of either row starts, so each piece between consecutive starts is compared once.
        """
        height, width = self.shape
        found = _SCRATCH.array("outline", (height * width,), np.int64)  # room for every pixel: one walk, no count
        return found[: boundary_pixels(self.start, self.length, self.segment, height, width, found)].copy()


def segment_inverse(panoptic_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted segment ids, (H, W) index of each pixel's segment), what np.unique(return_inverse=True) gives."""
    runs = SegmentRuns.of(panoptic_ids)
    return runs.segments, runs.paint(np.arange(len(runs.segments)))


def segment_class_index(segments: np.ndarray, class_table: ClassTable) -> np.ndarray:
    """Class index of each segment id (-1 for void), or a ValueError naming ids whose class is not in the table."""
    index = class_table.class_index(segments)
    unknown = segments[(index < 0) & (segments != 0)]
    if unknown.size:
        raise ValueError(
            f"panoptic ids {unknown[:8].tolist()} have class ids not in the class table {class_table.ids.tolist()}"
        )
    return index
