"""Depth errors over valid ground truth only: the KITTI depth devkit's metrics and Panoptic-DepthLab's.

Every metric is computed per image over pixels with ground truth > 0 and then averaged over images, as the
devkit does (PanDepth's published numbers averaged over invalid pixels too; this does not). Units follow the
KITTI leaderboards: RMSE and MAE in mm, iRMSE and iMAE in 1/km, SILog as 100 * sqrt(mean(d^2) - mean(d)^2)
with d = log(pred) - log(gt). absRel = mean(|e| / gt) and sqRel = mean(e^2 / gt^2) are the devkit's
definitions (not Eigen's mean(e^2 / gt)); delta_k = fraction with max(pred/gt, gt/pred) < 1.25^k.

Predictions <= 0 at valid ground truth are raised to the smallest depth a KITTI depth PNG can hold, 1/256 m.
The devkit instead fills such holes row-wise from their neighbors (``interpolateBackground``); metrics equal
the devkit's (up to its float32 sums) for dense predictions, which is what every depth source here produces.
"""

from __future__ import annotations

import numpy as np

MIN_PREDICTION_M = 1.0 / 256.0
METRICS = (
    "rmse_mm",
    "mae_mm",
    "irmse_per_km",
    "imae_per_km",
    "abs_rel",
    "sq_rel",
    "silog",
    "delta1",
    "delta2",
    "delta3",
)


def depth_errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """The metrics of one image; pred and gt in meters, same shape, gt 0 = no ground truth."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction and ground truth must have the same shape, got {pred.shape} and {gt.shape}")
    valid = gt > 0
    if not valid.any():
        raise ValueError("ground truth has no valid pixel (all <= 0): the image cannot be evaluated")
    estimate, truth = pred[valid], gt[valid]
    if not np.isfinite(estimate).all():
        raise ValueError(f"prediction has {np.count_nonzero(~np.isfinite(estimate))} non-finite values at valid gt")
    estimate = np.maximum(estimate, MIN_PREDICTION_M)

    error = estimate - truth
    inverse_error = 1.0 / estimate - 1.0 / truth
    log_ratio = np.log(estimate) - np.log(truth)
    ratio = np.maximum(estimate / truth, truth / estimate)
    silog_variance = max(np.mean(log_ratio**2) - np.mean(log_ratio) ** 2, 0.0)  # rounding can dip below 0
    return {
        "rmse_mm": 1000.0 * float(np.sqrt(np.mean(error**2))),
        "mae_mm": 1000.0 * float(np.mean(np.abs(error))),
        "irmse_per_km": 1000.0 * float(np.sqrt(np.mean(inverse_error**2))),
        "imae_per_km": 1000.0 * float(np.mean(np.abs(inverse_error))),
        "abs_rel": float(np.mean(np.abs(error) / truth)),
        "sq_rel": float(np.mean((error / truth) ** 2)),
        "silog": 100.0 * float(np.sqrt(silog_variance)),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
    }


class DepthMetricAccumulator:
    """Mean of the per-image metrics over the images added so far."""

    def __init__(self) -> None:
        self.images = 0
        self._sums = dict.fromkeys(METRICS, 0.0)

    def add(self, pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
        """Adds one image and returns its own metrics."""
        errors = depth_errors(pred, gt)
        for key, value in errors.items():
            self._sums[key] += value
        self.images += 1
        return errors

    def mean(self) -> dict[str, float]:
        if self.images == 0:
            raise ValueError("no image added: the mean of the depth metrics is undefined")
        return {key: total / self.images for key, total in self._sums.items()}
