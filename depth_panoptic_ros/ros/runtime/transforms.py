"""Rigid transforms between the node's frames: the LiDAR -> camera extrinsic (``camera_T_lidar``, mapping LiDAR
points into the camera optical frame) and the camera -> ground transform of the bird's-eye grid.

Each comes from its parameter (16 doubles, row-major; e.g. ``lidar_to_camera`` = KITTI's Tr_velo_to_cam) when
that is set, else from TF at the message's stamp. A fixed parameter wins because a user who set it has no TF
tree for the pair (datasets, bags without /tf_static); without it and without tf2_ros there is no transform.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from geometry_msgs.msg import Transform
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.time import Time

ROTATION_TOLERANCE = 1e-3  # max |R R^T - I| entry; calibration files print ~7 significant digits


def quaternion_to_rotation(x: float, y: float, z: float, w: float) -> np.ndarray:
    """(3, 3) rotation of the unit quaternion (x, y, z, w), the order of geometry_msgs/Quaternion."""
    q = np.array([x, y, z, w], dtype=np.float64)
    norm = np.linalg.norm(q)
    if not np.isfinite(norm) or abs(norm - 1.0) > ROTATION_TOLERANCE:
        raise ValueError(f"quaternion (x, y, z, w) = {q.tolist()}: expected unit norm, got {norm}")
    x, y, z, w = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_to_quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a 3x3 rotation (Shepperd's method: divide by the largest of the four candidates)."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(m)
    candidates = [trace, m[0, 0], m[1, 1], m[2, 2]]
    k = int(np.argmax(candidates))
    if k == 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s
    else:
        i, j, l = k - 1, k % 3, (k + 1) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[l, l])
        v = np.empty(3)
        v[i], v[j], v[l] = 0.25 * s, (m[j, i] + m[i, j]) / s, (m[l, i] + m[i, l]) / s
        q = v[0], v[1], v[2], (m[l, j] - m[j, l]) / s
    return tuple(float(c) for c in q)


def transform_to_matrix(transform: Transform) -> np.ndarray:
    """(4, 4) homogeneous matrix of a geometry_msgs/Transform (maps child-frame points into the parent frame)."""
    r, t = transform.rotation, transform.translation
    matrix = np.eye(4)
    matrix[:3, :3] = quaternion_to_rotation(r.x, r.y, r.z, r.w)
    matrix[:3, 3] = (t.x, t.y, t.z)
    return matrix


def extrinsic_from_parameter(values: Sequence[float], parameter: str = "lidar_to_camera") -> np.ndarray:
    """(4, 4) rigid transform from 16 row-major doubles, or a ValueError naming ``parameter`` and the fault."""
    m = np.asarray(values, dtype=np.float64)
    if m.size != 16:
        raise ValueError(f"{parameter}: expected 16 row-major values of a 4x4 matrix, got {m.size}")
    m = m.reshape(4, 4)
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{parameter}: holds NaN or inf: {m.tolist()}")
    if not np.array_equal(m[3], [0, 0, 0, 1]):
        raise ValueError(f"{parameter}: last row must be 0 0 0 1, got {m[3].tolist()}")
    rotation = m[:3, :3]
    error = np.abs(rotation @ rotation.T - np.eye(3)).max()
    if error > ROTATION_TOLERANCE or np.linalg.det(rotation) < 0:
        raise ValueError(
            f"{parameter}: the upper-left 3x3 is not a rotation (|R R^T - I| = {error:.2e}, "
            f"det = {np.linalg.det(rotation):.4f}; expected <= {ROTATION_TOLERANCE} and +1): {rotation.tolist()}"
        )
    return m


class TransformSource:
    """``target_T_source`` for each message: the fixed parameter when given, else a TF lookup at its stamp.

    ``parameter`` names the fixed value in errors (lidar_to_camera, camera_to_ground); ``share`` is another
    source whose TF listener to reuse, so that a node subscribes to /tf once. The TF lookup waits up to
    ``timeout_s`` for the transform, so call it from a worker thread or a multi-threaded executor: in a
    callback of a single-threaded executor /tf could not arrive while it waits.
    """

    def __init__(
        self,
        node: Node,
        fixed: Sequence[float],
        timeout_s: float = 0.1,
        parameter: str = "lidar_to_camera",
        share: TransformSource | None = None,
    ) -> None:
        self._fixed = extrinsic_from_parameter(fixed, parameter) if len(fixed) else None
        self._timeout = Duration(seconds=timeout_s)
        self._buffer: Any = None
        if self._fixed is not None:
            return
        if share is not None and share._buffer is not None:
            self._tf_error, self._buffer = share._tf_error, share._buffer
            return
        try:
            import tf2_ros
        except ImportError as exc:
            raise ValueError(
                f"no transform for {parameter}: {parameter} is empty and tf2_ros is not installed; "
                f"set {parameter} to the 16 row-major values of the 4x4 transform"
            ) from exc
        self._tf_error = tf2_ros.TransformException
        self._buffer = tf2_ros.Buffer(node=node)
        self._listener = tf2_ros.TransformListener(self._buffer, node)

    def lookup(self, target_frame: str, source_frame: str, stamp: Any, wait: bool = True) -> np.ndarray:
        """(4, 4) target_T_source at ``stamp`` (builtin_interfaces/Time); LookupError when TF cannot tell, at
        once without ``wait`` (what TF holds now), else after up to the timeout."""
        if self._fixed is not None:
            return self._fixed
        timeout = self._timeout if wait else Duration()
        try:
            stamped = self._buffer.lookup_transform(target_frame, source_frame, Time.from_msg(stamp), timeout)
        except self._tf_error as exc:
            raise LookupError(
                f"no transform {source_frame} -> {target_frame} at {stamp.sec}.{stamp.nanosec:09d}: {exc}"
            ) from exc
        return transform_to_matrix(stamped.transform)

    def clear(self) -> None:
        """Forgets buffered transforms, after time jumped back (bag loop) and the old ones lie in the future."""
        if self._buffer is not None:
            self._buffer.clear()
