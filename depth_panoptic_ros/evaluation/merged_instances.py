"""Merged instances: predicted thing segments that swallow two or more ground-truth instances of their class.

This is the failure the depth-aware Dice loss targets (neighboring look-alike objects predicted as one), and
PQ hides it: the merged segment still matches one of the instances, so it costs only a false negative.

A ground-truth instance counts as covered by a prediction of its class when *more than* ``min_fraction`` of its
pixels lie in that prediction. The default 0.5 is PQ's majority rule: an instance then belongs to at most one
prediction, so no instance counts towards two merges, and a prediction that only touches the edge of a
neighbor is not called a merge. Crowd regions (thing classes without instance number) are not instances.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.evaluation.pq import cityscapes_segments, joint_histogram

DEFAULT_MIN_FRACTION = 0.5


def count_merged_instances(
    gt_ids: np.ndarray, pred_ids: np.ndarray, class_table: ClassTable, min_fraction: float = DEFAULT_MIN_FRACTION
) -> int:
    """Number of predicted thing segments covering >= 2 ground-truth instances of their class.

    Both maps hold class id * label_divisor + instance (0 = void); classes outside the table are void.
    """
    if not 0.0 < min_fraction < 1.0:
        raise ValueError(f"min_fraction must lie in (0, 1), got {min_fraction!r}")
    gt_numbers, gt_segments = cityscapes_segments(gt_ids, class_table, "ground-truth")
    pred_numbers, pred_segments = cityscapes_segments(pred_ids, class_table, "prediction")
    counts = joint_histogram(gt_numbers, gt_segments.ids, pred_numbers, pred_segments.ids)
    gt_area = counts.sum(axis=1)[1:]
    is_instance = class_table.is_thing[class_table.index_of_id[gt_segments.category_ids]] & ~gt_segments.iscrowd
    same_class = gt_segments.category_ids[:, None] == pred_segments.category_ids[None, :]
    covered = (counts[1:, 1:] > min_fraction * gt_area[:, None]) & same_class & is_instance[:, None]
    # a prediction can only cover an instance of its own class, so covered columns are thing predictions
    return int(np.count_nonzero(covered.sum(axis=0) >= 2))


@dataclass
class MergedInstanceCounter:
    """Merged-instance count summed over images."""

    class_table: ClassTable
    min_fraction: float = DEFAULT_MIN_FRACTION
    merged: int = field(default=0, init=False)
    images: int = field(default=0, init=False)

    def add(self, gt_ids: np.ndarray, pred_ids: np.ndarray) -> int:
        """Adds one image and returns its own count."""
        count = count_merged_instances(gt_ids, pred_ids, self.class_table, self.min_fraction)
        self.merged += count
        self.images += 1
        return count
