"""Depth metrics against hand-computed values and properties on real KITTI ground truth."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from depth_panoptic_ros.evaluation.depth_metrics import DepthMetricAccumulator, depth_errors, devkit_fill


def test_hand_computed_image() -> None:
    gt = np.array([[2.0, 4.0], [0.0, 5.0]])  # the 0 is no ground truth: its prediction 7 is ignored
    pred = np.array([[3.0, 2.0], [7.0, 5.0]])
    # valid pairs (pred, gt): (3, 2), (2, 4), (5, 5); errors +1, -2, 0
    log_ratios = [math.log(1.5), math.log(0.5), 0.0]
    silog = 100 * math.sqrt(sum(d * d for d in log_ratios) / 3 - (sum(log_ratios) / 3) ** 2)
    expected = {
        "rmse_mm": 1000 * math.sqrt(5 / 3),  # (1 + 4 + 0) / 3
        "mae_mm": 1000.0,  # (1 + 2 + 0) / 3
        "irmse_per_km": 1000 * math.sqrt(13 / 432),  # inverse errors -1/6, 1/4, 0 -> (1/36 + 1/16) / 3
        "imae_per_km": 1000 * 5 / 36,  # (1/6 + 1/4) / 3
        "abs_rel": 1 / 3,  # (1/2 + 2/4 + 0) / 3
        "sq_rel": 1 / 6,  # (1/4 + 1/4 + 0) / 3
        "silog": silog,
        "delta1": 1 / 3,  # ratios 1.5, 2, 1: only 1 < 1.25
        "delta2": 2 / 3,  # 1.5 and 1 < 1.5625
        "delta3": 2 / 3,  # 2 > 1.953125
    }
    errors = depth_errors(pred, gt)
    assert {key: errors[key] for key in expected} == pytest.approx(expected, rel=1e-12)
    assert errors["coverage"] == 1.0  # dense: the devkit figure is the same
    assert {key: errors[f"devkit_{key}"] for key in expected} == pytest.approx(expected, rel=1e-12)


def test_images_are_averaged_not_pixels() -> None:
    accumulator = DepthMetricAccumulator()
    accumulator.add(np.full((1, 2), 2.0), np.full((1, 2), 1.0))  # RMSE 1000 mm
    accumulator.add(np.full((1, 10), 1.0), np.full((1, 10), 1.0))  # RMSE 0
    mean = accumulator.mean()
    assert accumulator.images == 2
    assert mean["rmse_mm"] == pytest.approx(500.0)  # pooling the 12 pixels would give 1000 * sqrt(2 / 12)
    assert mean["delta1"] == pytest.approx(0.5)


def test_holes_are_reported_as_coverage_and_filled_like_the_devkit() -> None:
    gt = np.ones((1, 6))
    errors = depth_errors(np.array([[0.0, 2.0, 0.0, -1.0, 4.0, 0.0]]), gt)
    assert errors["coverage"] == pytest.approx(2 / 6)
    assert errors["rmse_mm"] == pytest.approx(1000 * math.sqrt((1 + 9) / 2))  # errors 1 and 3 where predicted
    assert errors["mae_mm"] == pytest.approx(2000.0)
    # The devkit's filling: row start <- 2 (first depth), the gap between 2 and 4 <- the nearer, 2; row end <- 4.
    assert errors["devkit_rmse_mm"] == pytest.approx(1000 * math.sqrt((4 * 1 + 2 * 9) / 6))
    assert errors["devkit_mae_mm"] == pytest.approx(1000 * (4 * 1 + 2 * 3) / 6)
    # Rows without a depth take the nearest row's (above on a tie); nothing predicted: undefined.
    np.testing.assert_array_equal(devkit_fill(np.array([[0, 5], [0, 0], [3, 0]])), [[5, 5], [5, 5], [3, 3]])
    np.testing.assert_array_equal(devkit_fill(np.array([[0, 0], [0, 0], [0, 7]])), [[7, 7], [7, 7], [7, 7]])
    assert devkit_fill(np.zeros((2, 2))) is None
    nothing = depth_errors(np.zeros((1, 2)), np.ones((1, 2)))
    assert nothing["coverage"] == 0.0 and math.isnan(nothing["rmse_mm"]) and math.isnan(nothing["devkit_rmse_mm"])


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="same shape"):
        depth_errors(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="no valid pixel"):
        depth_errors(np.ones((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="1 non-finite"):
        depth_errors(np.array([np.nan, 1.0]), np.ones(2))
    with pytest.raises(ValueError, match="no image added"):
        DepthMetricAccumulator().mean()


def test_real_kitti_ground_truth_properties(kitti_depth_demo: Path) -> None:
    raw = cv2.imread(str(kitti_depth_demo / "depth" / "0000000005.png"), cv2.IMREAD_UNCHANGED)
    gt = raw.astype(np.float64) / 256.0
    valid = gt > 0
    assert errors_of(gt, gt) == pytest.approx({"rmse_mm": 0.0, "silog": 0.0, "delta1": 1.0, "abs_rel": 0.0})

    # a 10% scale error: absRel exactly 0.1, SILog blind to it, and RMSE = 0.1 * RMS of the ground truth
    scaled = errors_of(1.1 * gt, gt)
    assert scaled["abs_rel"] == pytest.approx(0.1)
    assert scaled["silog"] == pytest.approx(0.0, abs=1e-5)
    assert scaled["rmse_mm"] == pytest.approx(100 * np.sqrt(np.mean(gt[valid] ** 2)))

    # log-normal noise: SILog = 100 * std of the log ratio over the valid pixels, whatever the global scale
    noise = np.random.default_rng(0).normal(0.0, 0.05, gt.shape)
    noisy = errors_of(2.0 * gt * np.exp(noise) + (gt == 0) * 99.0, gt)
    assert noisy["silog"] == pytest.approx(100 * np.std(noise[valid]), rel=1e-9)


def errors_of(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    errors = depth_errors(pred, gt)
    return {key: errors[key] for key in ("rmse_mm", "silog", "delta1", "abs_rel")}
