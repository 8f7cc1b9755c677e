"""LiDAR points -> sparse depth image of a camera, with a z-buffer and the winning point per pixel.

Pixel convention (OpenCV): pixel centers lie at integer coordinates, so a point projecting to (u, v) lands in
column floor(u + 0.5) and row floor(v + 0.5). Projection goes through the camera's full P, so that a P with a
non-zero fourth column (KITTI's P2, a right camera) is honored; the stored depth is the homogeneous w of
P @ [X; 1], i.e. the z of the point in the frame of the camera P describes (the camera-frame z when P = [K | 0]).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.geometry.lidar_compiled import project_nearest
from depth_panoptic_ros.scratch import Scratch

_SCRATCH = Scratch()


@dataclass(frozen=True)
class LidarProjection:
    """depth: (H, W) float32 meters, 0 = no return; pixel / point: flat pixel index and input row of each winner,
    in the order the pixels were first hit (the sweep's order; no sort: ~1 ms per frame that nothing needed).

    The pipeline reads only the depth, so the full-size map of winning points (``index``) is made on request.
    """

    depth: np.ndarray
    pixel: np.ndarray
    point: np.ndarray

    @cached_property
    def index(self) -> np.ndarray:
        """(H, W) int32 row of the input point that won each pixel, -1 where none did."""
        index = np.full(self.depth.shape, -1, dtype=np.int32)
        index.ravel()[self.pixel] = self.point
        return index


def project_points(
    points: np.ndarray,
    T_cam_lidar: np.ndarray,
    camera: CameraModel,
    *,
    max_range: float = 120.0,
    min_depth: float = 0.1,
) -> LidarProjection:
    """Projects LiDAR points into the camera; the nearest point wins each pixel.

    points: (N, 3) or (N, 4+) in the LiDAR frame (extra columns such as intensity are ignored; NaN/inf allowed).
    max_range bounds the LiDAR-frame range |xyz| (the sensor's reach); min_depth drops points behind or too
    close to the camera. Non-finite points and points outside the image are dropped too.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points: expected shape (N, 3) or (N, 4+), got {points.shape}")
    T = np.asarray(T_cam_lidar, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f"T_cam_lidar: expected a finite 4x4 matrix, got shape {T.shape}")
    if not max_range > 0 or not min_depth > 0:
        raise ValueError(f"max_range and min_depth must be positive, got {max_range} and {min_depth}")

    height, width = camera.shape
    depth = np.zeros((height, width), dtype=np.float32)
    if points.dtype not in (np.float32, np.float64):
        points = points.astype(np.float64)
    n = len(points)
    slot = _SCRATCH.array("slot", (height * width,), np.int32)
    pixel, point, nearest = np.empty(n, np.int64), np.empty(n, np.int64), _SCRATCH.array("nearest", (n,), np.float64)
    hit = project_nearest(points, camera.P @ T, max_range, min_depth, depth, slot, pixel, point, nearest)
    return LidarProjection(depth=depth, pixel=pixel[:hit], point=point[:hit])
