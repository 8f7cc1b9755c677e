"""One synchronized message set -> the pipeline's SensorFrame, for the node and `bag process` alike, so that
both decode, check and reject their inputs the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from depth_panoptic_ros.frame import SensorFrame
from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.ros.codecs.cloud_codec import cloud_to_xyz
from depth_panoptic_ros.ros.codecs.image_codec import decode_compressed_image, decode_image
from depth_panoptic_ros.ros.codecs.validation import DEFAULT_LIMITS, InputLimits

# (camera frame_id, the cloud's header) -> T_cam_lidar; raises LookupError when the two are not linked
ExtrinsicLookup = Callable[[str, Any], np.ndarray]


class FrameRejected(ValueError):
    """A set that cannot be processed; ``source`` (image, camera_info, lidar, tf, pipeline) says which input was
    at fault, so that each kind of problem can be logged on its own."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(reason)
        self.source = source


def decode_any_image(msg: Any, limits: InputLimits = DEFAULT_LIMITS) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a sensor_msgs Image or CompressedImage (only the latter has ``format``)."""
    return decode_compressed_image(msg, limits) if hasattr(msg, "format") else decode_image(msg, limits)


def messages_to_frame(
    images: Sequence[tuple[str, Any]],
    cameras: Sequence[CameraModel],
    cloud: tuple[str, Any, ExtrinsicLookup] | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
) -> SensorFrame:
    """The SensorFrame of (topic, image) pairs (left first; a second one is the stereo right image), their camera
    models and an optional (topic, PointCloud2, lookup of its extrinsic).

    FrameRejected names the topic of an undecodable image or cloud, or of a cloud without one finite point;
    the extrinsic lookup's own LookupError is passed on, since callers differ on whether that ends a run.
    """
    rgbs = []
    for topic, msg in images:
        try:
            rgbs.append(decode_any_image(msg, limits))
        except ValueError as exc:
            raise FrameRejected("image", f"{topic}: {exc}") from exc
    frame = SensorFrame(rgb=rgbs[0], camera=cameras[0])
    if len(rgbs) > 1:
        frame.right_rgb, frame.right_camera = rgbs[1], cameras[1]
    if cloud is not None:
        topic, msg, extrinsic = cloud
        try:
            points = cloud_to_xyz(msg, limits)
        except ValueError as exc:
            raise FrameRejected("lidar", f"{topic}: {exc}") from exc
        if not np.isfinite(points).all(axis=1).any():
            raise FrameRejected("lidar", f"{topic}: none of its {len(points)} points is finite")
        frame.points = points
        frame.T_cam_lidar = extrinsic(images[0][1].header.frame_id, msg.header)
    return frame
