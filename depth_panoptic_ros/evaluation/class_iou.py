"""Per-class IoU of thing masks (seed 003's Table 1): how well the merged map covers each thing class.

A pixel belongs to class c in a map when its panoptic id's class is c, whatever the instance; IoU_c =
|pred_c ∩ gt_c| / |pred_c ∪ gt_c| summed over all images before dividing, over pixels whose ground truth is
not void (as semantic-segmentation IoU). It measures the merge's masks apart from instance matching, which
PQ folds in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from depth_panoptic_ros.classes import ClassTable


@dataclass
class ThingMaskIoU:
    """Accumulates a confusion matrix of class indices (void = the last row / column) over images."""

    class_table: ClassTable
    confusion: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.class_table) + 1
        self.confusion = np.zeros((n, n), np.int64)

    def add(self, gt_ids: np.ndarray, pred_ids: np.ndarray) -> None:
        if gt_ids.shape != pred_ids.shape:
            raise ValueError(f"ground truth {gt_ids.shape} and prediction {pred_ids.shape} differ in shape")
        n = len(self.class_table) + 1
        gt = self.class_table.class_index(gt_ids) % n  # -1 (void) -> n - 1
        pred = self.class_table.class_index(pred_ids) % n
        self.confusion += np.bincount((gt * n + pred).ravel(), minlength=n * n).reshape(n, n)

    def summary(self) -> dict[str, float]:
        """{thing class name: IoU} for thing classes present in ground truth or prediction (NaN never occurs)."""
        labeled = self.confusion[:-1]  # rows of non-void ground truth
        inter = np.diagonal(labeled)[: len(self.class_table)]
        union = labeled.sum(axis=1) + labeled[:, :-1].sum(axis=0) - inter
        names = self.class_table.names
        return {names[i]: float(inter[i] / union[i]) for i in self.class_table.thing_indices.tolist() if union[i] > 0}
