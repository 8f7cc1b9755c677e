"""Merged-instance count on hand-built Cityscapes-style maps (car id 26 and person 24 are things, road 7 stuff)."""

from __future__ import annotations

import numpy as np
import pytest

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.evaluation.merged_instances import MergedInstanceCounter, count_merged_instances

TABLE = ClassTable.cityscapes()
CAR_A, CAR_B, CAR_CROWD, ROAD = 26001, 26002, 26000, 7000
# two 4-pixel cars side by side on the road
GT = np.array([[ROAD, CAR_A, CAR_A, CAR_A, CAR_A, CAR_B, CAR_B, CAR_B, CAR_B, ROAD]])


def merged(pred: list[int], gt: np.ndarray = GT, **kwargs) -> int:
    return count_merged_instances(gt, np.array([pred]), TABLE, **kwargs)


def test_one_prediction_over_two_cars_is_a_merge() -> None:
    assert merged([ROAD, 26005, 26005, 26005, 26005, 26005, 26005, 26005, 26005, ROAD]) == 1
    # the same with a semantic-only car blob (no instance number): still one thing segment merging two cars
    assert merged([ROAD, 26000, 26000, 26000, 26000, 26000, 26000, 26000, 26000, ROAD]) == 1


def test_separate_predictions_are_not_merges() -> None:
    assert merged([ROAD, 26005, 26005, 26005, 26005, 26006, 26006, 26006, 26006, ROAD]) == 0


def test_coverage_must_exceed_the_fraction() -> None:
    # car B: 2 of its 4 pixels (exactly half) in the prediction -> not covered by default
    half = [ROAD, 26005, 26005, 26005, 26005, 26005, 26005, 26006, 26006, ROAD]
    assert merged(half) == 0
    assert merged(half, min_fraction=0.4) == 1  # 2/4 > 0.4
    # 3 of 4 pixels -> covered
    assert merged([ROAD, 26005, 26005, 26005, 26005, 26005, 26005, 26005, 26006, ROAD]) == 1


def test_other_class_and_crowd_are_not_instances() -> None:
    # a person prediction over both cars merges no *person* instances
    assert merged([ROAD, 24003, 24003, 24003, 24003, 24003, 24003, 24003, 24003, ROAD]) == 0
    # a car instance next to a car crowd region: covering both is not a merge of two instances
    gt = np.array([[ROAD, CAR_A, CAR_A, CAR_A, CAR_A, CAR_CROWD, CAR_CROWD, CAR_CROWD, CAR_CROWD, ROAD]])
    assert merged([ROAD, 26005, 26005, 26005, 26005, 26005, 26005, 26005, 26005, ROAD], gt=gt) == 0


def test_counter_sums_images_and_checks_its_fraction() -> None:
    counter = MergedInstanceCounter(TABLE)
    assert counter.add(GT, np.array([[ROAD] + [26005] * 8 + [ROAD]])) == 1
    assert counter.add(GT, GT) == 0
    assert counter.add(np.tile(GT, (1, 2)), np.array([([ROAD] + [26005] * 8 + [ROAD]) * 2])) == 1
    assert (counter.merged, counter.images) == (2, 3)
    with pytest.raises(ValueError, match=r"min_fraction must lie in \(0, 1\), got 1.5"):
        merged(list(GT[0]), min_fraction=1.5)
