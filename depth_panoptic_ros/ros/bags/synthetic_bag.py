"""A rosbag2 of synthetic sensor data laid out like a real recording, for the demo, the tests and trying the node.

Topics use the node's default input names (so the bag plays into it without remapping); stamps advance at the
camera rate and the LiDAR's are a few milliseconds off the camera's, as with unsynchronized real sensors, so
the approximate-time synchronizer is exercised. /tf_static holds a small tree base_link -> camera_link ->
camera optical frame and base_link -> lidar, so the LiDAR -> camera extrinsic takes a 3-link lookup.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from depth_panoptic_ros.geometry.pointcloud2 import FLOAT32, PackedCloud, PointFieldSpec
from depth_panoptic_ros.ros.bags.bag_io import TF_STATIC, BagWriter, tf_message
from depth_panoptic_ros.ros.bags.bag_process import MONO_TOPICS, STEREO_TOPICS
from depth_panoptic_ros.ros.codecs.camera_info import camera_info_from_model
from depth_panoptic_ros.ros.codecs.cloud_codec import cloud_to_msg
from depth_panoptic_ros.ros.codecs.image_codec import image_to_msg

BASE_FRAME = "base_link"
CAMERA_LINK = "camera_link"
CAMERA_FRAME = "camera_optical_frame"
LIDAR_FRAME = "lidar"
LIDAR_JITTER_S = 0.005  # |LiDAR stamp - camera stamp| <= this
# camera_link (x forward, y left, z up) <- optical frame (z forward, x right, y down), REP 103.
LINK_T_OPTICAL = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
_LIDAR_FIELDS = tuple(PointFieldSpec(name, 4 * i, FLOAT32) for i, name in enumerate(("x", "y", "z", "intensity")))


@dataclass(frozen=True)
class SyntheticBag:
    """What was written: the bag, its frame count and the stamps (ns) of its camera images."""

    path: Path
    frames: int
    image_stamps_ns: tuple[int, ...]


def static_transforms(T_cam_lidar: np.ndarray, camera_height_m: float) -> list[tuple[str, str, np.ndarray]]:
    """(parent, child, parent_T_child) of the rig whose optical-frame <- LiDAR transform is ``T_cam_lidar``."""
    base_T_link = np.eye(4)
    base_T_link[2, 3] = camera_height_m
    base_T_lidar = base_T_link @ LINK_T_OPTICAL @ T_cam_lidar
    return [
        (BASE_FRAME, CAMERA_LINK, base_T_link),
        (CAMERA_LINK, CAMERA_FRAME, LINK_T_OPTICAL),
        (BASE_FRAME, LIDAR_FRAME, base_T_lidar),
    ]


def lidar_to_msg(points: np.ndarray, header: Header) -> PointCloud2:
    """PointCloud2 of (N, 4) float32 x, y, z, intensity: the common layout of spinning-LiDAR drivers."""
    if points.ndim != 2 or points.shape[1] != 4:
        raise ValueError(f"LiDAR points: expected (N, 4) x, y, z, intensity, got shape {points.shape}")
    points = np.ascontiguousarray(points, dtype=np.float32)
    packed = PackedCloud(
        data=points.view(np.uint8).ravel(),
        width=len(points),
        height=1,
        point_step=16,
        row_step=16 * len(points),
        is_dense=bool(np.isfinite(points).all()),
        fields=_LIDAR_FIELDS,
    )
    return cloud_to_msg(packed, header)


def write_synthetic_bag(
    out: str | Path,
    frames: int,
    *,
    preset: str = "kitti",
    stereo: bool = False,
    rate_hz: float = 10.0,
    size: tuple[int, int] | None = None,
    seed: int = 0,
) -> SyntheticBag:
    """Writes ``frames`` synthetic frames (images rgb8, CameraInfo, LiDAR, /tf_static) as an mcap rosbag2.

    Stamps start at the current time; each message is recorded at its header stamp.
    """
    from depth_panoptic_ros.data.synthetic import SyntheticConfig, camera_preset, generate_frame

    if frames < 1:
        raise ValueError(f"frames: expected >= 1, got {frames}")
    if not rate_hz > 0:
        raise ValueError(f"rate: expected > 0 Hz, got {rate_hz}")
    config = SyntheticConfig(preset=preset, size=size, seed=seed, stereo=stereo)
    topics = STEREO_TOPICS if stereo else MONO_TOPICS
    rng = np.random.default_rng(seed)
    start_ns = time.time_ns()
    period_ns = round(1e9 / rate_hz)
    stamps = []
    with BagWriter(out) as bag:
        for index in range(frames):
            frame = generate_frame(config, index)
            stamp_ns = start_ns + index * period_ns
            if index == 0:
                height_m = camera_preset(preset, size).height_m
                tf = tf_message(static_transforms(frame.T_cam_lidar, height_m), stamp_ns)
                bag.write(TF_STATIC, tf, stamp_ns, latched=True)
            header = _header(stamp_ns, CAMERA_FRAME)
            bag.write(topics.image, image_to_msg(frame.rgb, "rgb8", header), stamp_ns)
            bag.write(topics.camera_info, camera_info_from_model(frame.camera, header), stamp_ns)
            if stereo:
                bag.write(topics.right_image, image_to_msg(frame.right_rgb, "rgb8", header), stamp_ns)
                bag.write(topics.right_camera_info, camera_info_from_model(frame.right_camera, header), stamp_ns)
            lidar_ns = stamp_ns + round(rng.uniform(-LIDAR_JITTER_S, LIDAR_JITTER_S) * 1e9)
            bag.write(topics.lidar, lidar_to_msg(frame.points, _header(lidar_ns, LIDAR_FRAME)), lidar_ns)
            stamps.append(stamp_ns)
    return SyntheticBag(Path(out), frames, tuple(stamps))


def _header(stamp_ns: int, frame_id: str) -> Header:
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return header
