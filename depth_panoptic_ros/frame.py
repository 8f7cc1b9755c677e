"""What crosses the boundary between the front ends (node, CLI, bag tools, training) and the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_panoptic_ros.geometry.camera import CameraModel


@dataclass
class SensorFrame:
    """One synchronized set of sensor data, in plain arrays.

    rgb: (H, W, 3) uint8 RGB of the (left) camera.
    camera: the model of that camera; its size must match rgb.
    points: (N, 3+) float32 LiDAR points in the LiDAR frame, or None.
    T_cam_lidar: (4, 4) LiDAR -> camera optical frame transform, required with points.
    right_rgb / right_camera: the rectified right image of a stereo pair and its model (baseline from its P).
    ground_T_camera: (4, 4) camera optical frame -> the vehicle's ground frame (x forward, y left, z up from the
    ground), needed only for the bird's-eye grid; None = no grid.
    """

    rgb: np.ndarray
    camera: CameraModel
    points: np.ndarray | None = None
    T_cam_lidar: np.ndarray | None = None
    right_rgb: np.ndarray | None = None
    right_camera: CameraModel | None = None
    ground_T_camera: np.ndarray | None = None
