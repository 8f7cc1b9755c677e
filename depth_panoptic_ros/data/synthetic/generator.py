"""Synthetic frames: seeded, so frame i of a config is the same array on every machine and every call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from depth_panoptic_ros.data.synthetic.config import SyntheticConfig
from depth_panoptic_ros.data.synthetic.lidar_sim import lidar_extrinsic, simulate_lidar
from depth_panoptic_ros.data.synthetic.presets import camera_preset
from depth_panoptic_ros.data.synthetic.rays import CameraRays
from depth_panoptic_ros.data.synthetic.render import cast, render_rgb
from depth_panoptic_ros.data.synthetic.scene import Scene, sample_scene
from depth_panoptic_ros.frame import SensorFrame
from depth_panoptic_ros.geometry.camera import CameraModel


@dataclass
class SyntheticFrame:
    """Sensor data and exact ground truth of one synthetic scene.

    rgb / right_rgb: (H, W, 3) uint8 of the rectified left / right camera (right_rgb None without stereo).
    depth: (H, W) float32 meters along the left camera's z, 0 on sky.
    panoptic: (H, W) int32 Cityscapes panoptic ids (class id * 1000 + instance).
    points: (N, 4) float32 x, y, z, intensity in the LiDAR frame (None without LiDAR); T_cam_lidar: (4, 4).
    look_alike_pairs: (P, 2) panoptic ids of identical things overlapping in the image at different depths
    (nearer first); same_depth_pairs: (Q, 2) of identical things side by side at one depth.
    scene: the scene description (3D boxes of the things in scene.instances).
    """

    rgb: np.ndarray
    depth: np.ndarray
    panoptic: np.ndarray
    camera: CameraModel
    right_rgb: np.ndarray | None
    right_camera: CameraModel | None
    points: np.ndarray | None
    T_cam_lidar: np.ndarray | None
    look_alike_pairs: np.ndarray
    same_depth_pairs: np.ndarray
    scene: Scene

    def sensor_frame(self) -> SensorFrame:
        """The frame as the pipeline's input (no ground truth)."""
        return SensorFrame(self.rgb, self.camera, self.points, self.T_cam_lidar, self.right_rgb, self.right_camera)


def right_camera_of(camera: CameraModel, baseline_m: float) -> CameraModel:
    """The rectified right camera of a pair: same intrinsics, P[0, 3] = -fx * baseline."""
    P = camera.P.copy()
    P[0, 3] = -camera.fx * baseline_m
    return CameraModel.from_matrices(camera.width, camera.height, camera.K, P, camera.D, camera.distortion_model)


def generate_frame(config: SyntheticConfig, index: int) -> SyntheticFrame:
    """Frame `index` of the data set described by config."""
    if index < 0:
        raise ValueError(f"synthetic frame index must be >= 0, got {index}")
    preset = camera_preset(config.preset, config.size)
    camera = preset.camera
    scene_rng, left_rng, right_rng, lidar_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([config.seed, index]).spawn(4)
    )
    scene = sample_scene(config, camera, preset.height_m, scene_rng)
    left_rays = CameraRays(camera, np.zeros(3))
    left = cast(scene, left_rays)
    rgb = render_rgb(scene, left, left_rays, left_rng, config.image_noise)
    right_rgb = right_camera = None
    if config.stereo:
        right_camera = right_camera_of(camera, config.rig_baseline_m)
        right_rays = CameraRays(camera, np.array([config.rig_baseline_m, 0.0, 0.0]))
        right_rgb = render_rgb(scene, cast(scene, right_rays), right_rays, right_rng, config.image_noise)
    points = T_cam_lidar = None
    if config.lidar:
        points = simulate_lidar(scene, config.lidar_config, lidar_rng)
        T_cam_lidar = lidar_extrinsic(config.lidar_config)
    return SyntheticFrame(
        rgb=rgb,
        depth=np.where(np.isfinite(left.t), left.t, np.float32(0)),
        panoptic=left.segment,
        camera=camera,
        right_rgb=right_rgb,
        right_camera=right_camera,
        points=points,
        T_cam_lidar=T_cam_lidar,
        look_alike_pairs=scene.look_alike_pairs,
        same_depth_pairs=scene.same_depth_pairs,
        scene=scene,
    )


class SyntheticDataset(Sequence[SyntheticFrame]):
    """`length` frames of a config, generated when indexed (nothing is held in memory)."""

    def __init__(self, config: SyntheticConfig, length: int) -> None:
        if length < 0:
            raise ValueError(f"synthetic dataset length must be >= 0, got {length}")
        self.config, self.length = config, int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> SyntheticFrame:
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"synthetic dataset index must be an int, got {type(index).__name__}")
        if not -self.length <= index < self.length:
            raise IndexError(f"synthetic frame {index} out of range for a dataset of {self.length}")
        return generate_frame(self.config, int(index) % self.length)
