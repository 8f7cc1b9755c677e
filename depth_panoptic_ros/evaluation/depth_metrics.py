"""Depth errors over valid ground truth only: the KITTI depth devkit's metrics and Panoptic-DepthLab's.

Every metric is computed per image and then averaged over images, as the devkit does (PanDepth's published
numbers averaged over invalid pixels too; this does not). Units follow the KITTI leaderboards: RMSE and MAE in
mm, iRMSE and iMAE in 1/km, SILog as 100 * sqrt(mean(d^2) - mean(d)^2) with d = log(pred) - log(gt).
absRel = mean(|e| / gt) and sqRel = mean(e^2 / gt^2) are the devkit's definitions (not Eigen's mean(e^2 / gt));
delta_k = fraction with max(pred/gt, gt/pred) < 1.25^k.

A prediction may leave pixels unknown (<= 0), e.g. the sky or gaps too wide to bridge. Two figures, both
reported, neither scoring a hole as some made-up depth:
- the plain metrics are taken over the pixels with ground truth *and* a prediction; ``coverage`` is the share
  of ground-truth pixels that have a prediction (a method that leaves hard pixels out shows it there);
- the ``devkit_`` metrics are the KITTI devkit's figure: holes are first filled the way its
  ``interpolateBackground`` does (each gap of a row takes the nearer of the depths on its two sides, row ends
  take the row's outermost depth, rows without any take the nearest such row's), then every ground-truth
  pixel is scored. The devkit leaves an empty row between two non-empty ones unfilled; here it takes the
  nearer row's depths, which only matters for such rows.
"""

from __future__ import annotations

import numpy as np

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
REPORTED = (*METRICS, "coverage", *(f"devkit_{key}" for key in METRICS))


def depth_errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """The metrics of one image (see the module doc): METRICS over the covered pixels, ``coverage``, and
    ``devkit_`` + METRICS over all ground truth after the devkit's hole filling (NaN where undefined: no pixel
    covered, no prediction at all); pred and gt
    in meters, same shape, gt 0 = no ground truth, pred <= 0 = unknown."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction and ground truth must have the same shape, got {pred.shape} and {gt.shape}")
    valid = gt > 0
    if not valid.any():
        raise ValueError("ground truth has no valid pixel (all <= 0): the image cannot be evaluated")
    if not np.isfinite(pred[valid]).all():
        raise ValueError(f"prediction has {np.count_nonzero(~np.isfinite(pred[valid]))} non-finite values at valid gt")
    covered = valid & (pred > 0)
    errors = _errors(pred[covered], gt[covered])
    errors["coverage"] = float(np.count_nonzero(covered) / np.count_nonzero(valid))
    filled = devkit_fill(pred)  # None: nothing to fill from, the devkit figure is undefined (NaN)
    devkit = _errors(np.empty(0), np.empty(0)) if filled is None else _errors(filled[valid], gt[valid])
    errors.update({f"devkit_{key}": value for key, value in devkit.items()})
    return errors


def devkit_fill(pred: np.ndarray) -> np.ndarray | None:
    """pred (H, W) with its pixels <= 0 filled as the KITTI devkit's interpolateBackground fills them (module
    doc); None when no pixel is > 0."""
    pred = np.asarray(pred, dtype=np.float64)
    known = pred > 0
    if not known.any():
        return None
    height, width = pred.shape
    cols = np.arange(width)
    left = np.maximum.accumulate(np.where(known, cols, -1), axis=1)  # nearest known column at or left of each
    right = np.minimum.accumulate(np.where(known, cols, width)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(height)[:, None]
    from_left = pred[rows, np.maximum(left, 0)]
    from_right = pred[rows, np.minimum(right, width - 1)]
    filled = np.where(left < 0, from_right, np.where(right >= width, from_left, np.minimum(from_left, from_right)))
    filled = np.where(known, pred, filled)
    row_known = known.any(axis=1)
    if not row_known.all():  # rows without a depth take the nearest row that has some (above on ties)
        index = np.arange(height)
        above = np.maximum.accumulate(np.where(row_known, index, -height))
        below = np.minimum.accumulate(np.where(row_known, index, 2 * height)[::-1])[::-1]
        nearest = np.where(index - above <= below - index, above, below)
        filled = filled[nearest]
    return filled


def _errors(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """METRICS of paired positive estimates and ground truths (all NaN for none)."""
    if estimate.size == 0:
        return dict.fromkeys(METRICS, float("nan"))
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
        self._sums = dict.fromkeys(REPORTED, 0.0)

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
