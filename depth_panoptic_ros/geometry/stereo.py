"""Depth from a rectified stereo pair with OpenCV's semi-global block matching, and LiDAR + stereo merging.

depth = fx * B / (d - (cx_left - cx_right)): B is the baseline between the two cameras' P matrices (their
difference, so KITTI's P2/P3, both offset from camera 0, work as well as ROS's [K|0] / [K|-fx*B]) and the cx
term covers rectifications that leave the principal points apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from depth_panoptic_ros.geometry.camera import CameraModel

_MODES = {
    "sgbm": cv2.STEREO_SGBM_MODE_SGBM,
    "sgbm_3way": cv2.STEREO_SGBM_MODE_SGBM_3WAY,
    "hh": cv2.STEREO_SGBM_MODE_HH,
    "hh4": cv2.STEREO_SGBM_MODE_HH4,
}


@dataclass(frozen=True)
class StereoConfig:
    """SGBM on the gray images; P1/P2 follow OpenCV's recommendation (8 and 32 x block_size^2).

    num_disparities = 128 reaches ~3 m on KITTI (fx 721 px, B 0.54 m); min/max depth are the paper's validity
    range for stereo depth (values < 1 m or > 500 m set to 0).
    """

    num_disparities: int = 128
    block_size: int = 5
    uniqueness_ratio: int = 10
    speckle_window_size: int = 100
    speckle_range: int = 2
    disp12_max_diff: int = 1
    pre_filter_cap: int = 63
    mode: str = "sgbm_3way"
    min_depth: float = 1.0
    max_depth: float = 500.0

    def __post_init__(self) -> None:
        if self.num_disparities <= 0 or self.num_disparities % 16:
            raise ValueError(f"num_disparities must be a positive multiple of 16, got {self.num_disparities}")
        if self.block_size < 1 or self.block_size % 2 == 0:
            raise ValueError(f"block_size must be odd and >= 1, got {self.block_size}")
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {sorted(_MODES)}, got {self.mode!r}")
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError(f"need 0 < min_depth < max_depth, got {self.min_depth} and {self.max_depth}")

    @property
    def p1(self) -> int:
        return 8 * self.block_size**2

    @property
    def p2(self) -> int:
        return 32 * self.block_size**2


def _gray(image: np.ndarray, name: str, shape: tuple[int, int]) -> np.ndarray:
    if image.dtype != np.uint8 or image.shape[:2] != shape or image.ndim not in (2, 3):
        raise ValueError(
            f"{name}: expected uint8 (H, W) or (H, W, 3) with H, W = {shape}, got {image.dtype} {image.shape}"
        )
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def stereo_depth(
    left_rgb: np.ndarray,
    right_rgb: np.ndarray,
    left: CameraModel,
    right: CameraModel,
    config: StereoConfig | None = None,
) -> np.ndarray:
    """(H, W) float32 meters of the left image from a rectified pair; 0 where matching failed or out of range."""
    config = config or StereoConfig()
    if left.shape != right.shape:
        raise ValueError(f"stereo cameras differ in size: left {left.shape}, right {right.shape}")
    baseline = right.baseline - left.baseline
    if not baseline > 0:
        raise ValueError(
            f"stereo baseline must be positive (right P[0, 3] = -fx * B), got {baseline} m; "
            "is the right camera's P missing or are the cameras swapped?"
        )
    if not np.isclose(left.fx, right.fx) or not np.isclose(left.fy, right.fy) or not np.isclose(left.cy, right.cy):
        raise ValueError(
            f"stereo pair is not rectified: fx/fy/cy differ (left {left.fx}, {left.fy}, {left.cy}; "
            f"right {right.fx}, {right.fy}, {right.cy})"
        )
    gray_left = _gray(left_rgb, "left image", left.shape)
    gray_right = _gray(right_rgb, "right image", left.shape)

    matcher = cv2.StereoSGBM_create(
        minDisparity=0,
        numDisparities=config.num_disparities,
        blockSize=config.block_size,
        P1=config.p1,
        P2=config.p2,
        disp12MaxDiff=config.disp12_max_diff,
        preFilterCap=config.pre_filter_cap,
        uniquenessRatio=config.uniqueness_ratio,
        speckleWindowSize=config.speckle_window_size,
        speckleRange=config.speckle_range,
        mode=_MODES[config.mode],
    )
    raw = matcher.compute(gray_left, gray_right)  # int16 fixed point, 4 fraction bits; -16 = no match
    disparity = raw.astype(np.float32) / 16.0 - np.float32(left.cx - right.cx)
    valid = (raw >= 0) & (disparity > 0)
    depth = np.zeros(disparity.shape, dtype=np.float32)
    depth[valid] = np.float32(left.fx * baseline) / disparity[valid]
    depth[(depth < config.min_depth) | (depth > config.max_depth)] = 0.0
    return depth


def merge_depth(lidar_depth: np.ndarray, stereo_depth: np.ndarray) -> np.ndarray:
    """LiDAR where it has a return (it is the more accurate sensor), stereo elsewhere; float32, 0 = invalid."""
    if lidar_depth.shape != stereo_depth.shape:
        raise ValueError(f"depth maps differ in shape: lidar {lidar_depth.shape}, stereo {stereo_depth.shape}")
    return np.where(lidar_depth > 0, lidar_depth, stereo_depth).astype(np.float32, copy=False)
