"""The panoptic output in the form every consumer (products, evaluation, ROS, files) reads."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from depth_panoptic_ros.products.segments import SegmentRuns

if TYPE_CHECKING:
    import torch


@dataclass
class PanopticResult:
    """ids: (H, W) int32 panoptic ids (class id * label_divisor + instance; 0 = void) at input resolution.

    segment_ids / segment_scores: one entry per segment present in ``ids`` (float32 score in [0, 1]).
    device_ids: ``ids`` as the tensor on the GPU the model ran on (None on the CPU): the products computed from
    network outputs are computed there (Pipeline: the instance depth statistics).
    """

    ids: np.ndarray
    segment_ids: np.ndarray
    segment_scores: np.ndarray
    device_ids: torch.Tensor | None = None

    @cached_property
    def runs(self) -> SegmentRuns:
        """The map's runs of equal ids, found once per frame and shared by the instance depth table and the
        color images (``ids`` must not be changed afterwards)."""
        return SegmentRuns.of(self.ids)

    def score_of(self, panoptic_ids: np.ndarray) -> np.ndarray:
        """Score per given segment id, NaN where the id is not a segment of this result."""
        lookup = dict(zip(self.segment_ids.tolist(), self.segment_scores.tolist(), strict=True))
        return np.array([lookup.get(i, np.nan) for i in np.asarray(panoptic_ids).tolist()], dtype=np.float32)
