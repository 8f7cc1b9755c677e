"""The one frame type every dataset reader returns, so augmentation, training, statistics and evaluation read
a single format whatever the source; and the synthetic generator's frames in that format.

A sample carries *measured* depth (what a deployed robot would have: projected LiDAR, stereo) apart from
ground-truth depth, because the networks are trained and evaluated on the former.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from depth_panoptic_ros.data.synthetic.config import SyntheticConfig
from depth_panoptic_ros.data.synthetic.generator import generate_frame
from depth_panoptic_ros.frame import SensorFrame
from depth_panoptic_ros.geometry.backproject import backproject
from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.geometry.lidar import project_points

SPLITS = ("train", "val")


@dataclass
class Sample:
    """One frame with its ground truth, in the package's conventions.

    rgb: (H, W, 3) uint8 RGB. sparse: (H, W) float32 meters of measured depth, 0 = none.
    depth: (H, W) float32 meters of ground-truth depth, 0 = none (on Cityscapes the stereo depth itself).
    panoptic: (H, W) int32 class id * 1000 + instance, 0 = void; None for data sets without labels.
    camera: the pinhole model of rgb; None after scale augmentation, whose depth / f no pinhole camera sees.
    look_alike_pairs: (P, 2) panoptic ids of identical neighboring instances (synthetic data), None if unknown.
    """

    name: str
    rgb: np.ndarray
    sparse: np.ndarray
    depth: np.ndarray
    panoptic: np.ndarray | None
    camera: CameraModel | None
    look_alike_pairs: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3 or self.rgb.dtype != np.uint8:
            raise ValueError(f"sample {self.name}: rgb must be (H, W, 3) uint8, got {self.rgb.dtype} {self.rgb.shape}")
        shape = self.rgb.shape[:2]
        maps = {"sparse": (self.sparse, np.float32), "depth": (self.depth, np.float32)}
        if self.panoptic is not None:
            maps["panoptic"] = (self.panoptic, np.int32)
        for what, (array, dtype) in maps.items():
            if array.shape != shape or array.dtype != dtype:
                expected = f"{np.dtype(dtype)} {shape} like rgb"
                raise ValueError(f"sample {self.name}: {what} must be {expected}, got {array.dtype} {array.shape}")
        if self.camera is not None and self.camera.shape != shape:
            raise ValueError(f"sample {self.name}: camera is {self.camera.shape} but rgb is {shape}")

    def sensor_frame(self) -> SensorFrame:
        """The deployed pipeline's input: the measured depth as points whose projection gives ``sparse`` back.

        Points are camera-frame back-projections through the intrinsics; T_cam_lidar undoes the fourth column of
        P (e.g. KITTI's P2 offset), so P @ T maps them onto their own pixels and the pipeline sees exactly the
        depth the networks were trained on (within its LiDAR range limits, pipeline.lidar_min_depth / max_range).
        """
        if self.camera is None:
            raise ValueError(f"sample {self.name} has no camera (augmented samples cannot be run through the pipeline)")
        xyz = backproject(self.sparse, self.camera).reshape(-1, 3)
        points = xyz[np.isfinite(xyz[:, 2])]
        T_cam_lidar = np.eye(4)
        T_cam_lidar[:3, 3] = -np.linalg.solve(self.camera.intrinsics, self.camera.P[:, 3])
        return SensorFrame(self.rgb, self.camera, points, T_cam_lidar)


@dataclass(frozen=True)
class SyntheticData:
    """The generator as a data set: frames [0, train_frames) train, the next val_frames validate.

    The generator config should have LiDAR on and may switch stereo off (only the LiDAR reaches the networks).
    """

    generator: SyntheticConfig = field(default_factory=lambda: SyntheticConfig(stereo=False))
    train_frames: int = 20000
    val_frames: int = 100

    def __post_init__(self) -> None:
        if not self.generator.lidar:
            raise ValueError("synthetic data needs generator.lidar = true: the sparse input depth is the LiDAR")
        if self.train_frames < 1 or self.val_frames < 0:
            raise ValueError(f"need train_frames >= 1 and val_frames >= 0, got {self.train_frames}, {self.val_frames}")

    def open(self, split: str) -> SyntheticSamples:
        if split not in SPLITS:
            raise ValueError(f"synthetic split must be one of {SPLITS}, got {split!r}")
        if split == "train":
            return SyntheticSamples(self.generator, 0, self.train_frames)
        return SyntheticSamples(self.generator, self.train_frames, self.val_frames)


class SyntheticSamples(Sequence[Sample]):
    """Frames first .. first + length - 1 of a generator config as samples, generated when indexed.

    sparse = the simulated LiDAR sweep projected into the camera, depth = the rendered depth.
    """

    def __init__(self, config: SyntheticConfig, first: int, length: int) -> None:
        self.config, self.first, self.length = config, first, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        if not 0 <= index < self.length:
            raise IndexError(f"synthetic sample {index} out of range for a split of {self.length}")
        frame = generate_frame(self.config, self.first + index)
        sparse = project_points(frame.points, frame.T_cam_lidar, frame.camera).depth
        return Sample(
            f"synthetic_{self.config.seed}_{self.first + index:06d}",
            frame.rgb,
            sparse,
            frame.depth.astype(np.float32, copy=False),
            frame.panoptic.astype(np.int32, copy=False),
            frame.camera,
            frame.look_alike_pairs,
        )
