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


@dataclass(frozen=True)
class LidarProjection:
    """depth: (H, W) float32 meters, 0 = no return; pixel / point: flat pixel index and input row of each winner.

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

    # A NaN or inf coordinate fails the range test (its squared norm is NaN or inf): no separate finiteness pass.
    # Rows are gathered with np.take(axis=0), several times faster than fancy indexing for (N, 3) arrays.
    xyz = points[:, :3].astype(np.float64)
    kept = np.flatnonzero(np.einsum("ij,ij->i", xyz, xyz) <= max_range * max_range)
    M = camera.P @ T  # (3, 4): LiDAR point -> homogeneous pixel
    uvw = np.take(xyz, kept, axis=0) @ M[:, :3].T + M[:, 3]
    in_front = np.flatnonzero(uvw[:, 2] >= min_depth)
    kept, uvw = kept[in_front], np.take(uvw, in_front, axis=0)
    w = uvw[:, 2]
    col = np.floor(uvw[:, 0] / w + 0.5)
    row = np.floor(uvw[:, 1] / w + 0.5)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    kept, w = kept[inside], w[inside]
    pixel = row[inside].astype(np.int64) * width + col[inside].astype(np.int64)

    order = np.lexsort((w, pixel))  # by pixel, then nearest first (stable: lower point index on ties)
    pixel, w, kept = pixel[order], w[order], kept[order]
    first = np.ones(pixel.size, dtype=bool)
    first[1:] = pixel[1:] != pixel[:-1]
    pixel = pixel[first]
    depth.ravel()[pixel] = w[first]
    return LidarProjection(depth=depth, pixel=pixel, point=kept[first])
