"""The panoptic output in the form every consumer (products, evaluation, ROS, files) reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PanopticResult:
    """ids: (H, W) int32 panoptic ids (class id * label_divisor + instance; 0 = void) at input resolution.

    segment_ids / segment_scores: one entry per segment present in ``ids`` (float32 score in [0, 1]).
    """

    ids: np.ndarray
    segment_ids: np.ndarray
    segment_scores: np.ndarray

    def score_of(self, panoptic_ids: np.ndarray) -> np.ndarray:
        """Score per given segment id, NaN where the id is not a segment of this result."""
        lookup = dict(zip(self.segment_ids.tolist(), self.segment_scores.tolist(), strict=True))
        return np.array([lookup.get(i, np.nan) for i in np.asarray(panoptic_ids).tolist()], dtype=np.float32)
