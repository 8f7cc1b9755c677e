"""A rotating multi-beam LiDAR cast into the same scene as the cameras, with KITTI's axes and file conventions.

Points come out in the LiDAR frame (x forward, y left, z up) with the extrinsic T_cam_lidar, exactly as a
KITTI sweep and its calibration do, so the projection code is exercised on data with a known answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from depth_panoptic_ros.data.synthetic.config import LidarConfig
from depth_panoptic_ros.data.synthetic.rays import Dirs, Region, gather
from depth_panoptic_ros.data.synthetic.render import cast, reflectance
from depth_panoptic_ros.data.synthetic.scene import Scene

# Columns: the LiDAR axes (x forward, y left, z up) in camera optical axes (x right, y down, z forward).
_R_CAM_LIDAR = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


def lidar_extrinsic(config: LidarConfig) -> np.ndarray:
    """(4, 4) T_cam_lidar: LiDAR frame -> left camera optical frame."""
    transform = np.eye(4)
    transform[:3, :3] = _R_CAM_LIDAR
    transform[:3, 3] = config.offset_m
    return transform


@dataclass(frozen=True)
class LidarRays:
    """One ray per beam (rows, top to bottom) and azimuth step (columns, left to right), unit length."""

    config: LidarConfig

    @property
    def origin(self) -> np.ndarray:
        return np.asarray(self.config.offset_m, dtype=np.float64)

    @cached_property
    def azimuths(self) -> np.ndarray:
        """Radians, positive to the left of forward, decreasing along the columns."""
        c = self.config
        steps = max(int(round(c.fov_deg / c.azimuth_step_deg)), 1)
        return np.deg2rad(c.fov_deg / 2 - c.azimuth_step_deg * np.arange(steps))

    @cached_property
    def dirs(self) -> Dirs:
        """Unit directions in camera axes: x = -y_lidar, y = -z_lidar (one per beam), z = x_lidar."""
        elevation = np.deg2rad(np.linspace(*self.config.elevation_deg, self.config.beams))[:, None]
        azimuth = self.azimuths[None, :]
        return tuple(
            np.asarray(d, dtype=np.float32)
            for d in (-np.cos(elevation) * np.sin(azimuth), -np.sin(elevation), np.cos(elevation) * np.cos(azimuth))
        )

    def footprint(self, corners: np.ndarray) -> Region | None:
        """Columns between the corners' azimuths (all beams: elevation bounds of a box are not at its corners)."""
        rel = corners - self.origin
        azimuth = np.arctan2(-rel[:, 0], rel[:, 2])
        if np.ptp(azimuth) > np.pi:  # wraps around behind the sensor
            return slice(None), slice(None)
        step = np.deg2rad(self.config.azimuth_step_deg)
        first = max(int(np.floor((self.azimuths[0] - azimuth.max()) / step)), 0)
        last = min(int(np.ceil((self.azimuths[0] - azimuth.min()) / step)) + 1, len(self.azimuths))
        return (slice(None), slice(first, last)) if first < last else None


def simulate_lidar(scene: Scene, config: LidarConfig, rng: np.random.Generator) -> np.ndarray:
    """(N, 4) float32 points x, y, z, intensity in the LiDAR frame: hits within range, noisy, some dropped."""
    rays = LidarRays(config)
    hits = cast(scene, rays)
    keep = (hits.t <= config.max_range_m) & (rng.random(hits.t.shape) >= config.dropout)
    distance = hits.t[keep] + rng.normal(0.0, config.range_noise_m, int(keep.sum())).astype(np.float32)
    xyz = (distance[:, None] * gather(rays.dirs, keep)) @ _R_CAM_LIDAR.astype(np.float32)
    return np.column_stack([xyz, reflectance(scene, hits)[keep]]).astype(np.float32)
