"""Sensor calibration files: a small YAML format for any rig, and KITTI's calib .txt.

YAML layout (matrices as flat row-major lists or nested lists)::

    width: 1242
    height: 375
    K: [fx, 0, cx, 0, fy, cy, 0, 0, 1]
    D: [k1, k2, p1, p2, k3]          # optional, plumb_bob
    P: [12 numbers]                  # optional, defaults to [K | 0] (rectified left/mono camera)
    T_cam_lidar: [16 numbers]        # optional: LiDAR -> camera optical frame
    right: {K: ..., P: ..., D: ...}  # optional rectified right camera; its P carries the baseline

Unknown keys are errors, so that a misspelt T_cam_lidar does not silently disable the LiDAR.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from depth_panoptic_ros.data.kitti import PathLike, read_kitti_calib
from depth_panoptic_ros.geometry.camera import CameraModel

_TOP_KEYS = {"width", "height", "K", "D", "P", "T_cam_lidar", "right"}
_RIGHT_KEYS = {"K", "D", "P"}


@dataclass(frozen=True)
class Calibration:
    """camera: the (left) camera; T_cam_lidar: 4x4 LiDAR -> camera, None without a LiDAR; right_camera: stereo."""

    camera: CameraModel
    T_cam_lidar: np.ndarray | None = None
    right_camera: CameraModel | None = None


def _matrix(section: dict[str, Any], key: str, rows: int, cols: int, where: str) -> np.ndarray:
    try:
        values = np.asarray(section[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}{key}: expected {rows * cols} numbers, got {section[key]!r}") from None
    if values.size != rows * cols or values.shape not in ((rows * cols,), (rows, cols)):
        raise ValueError(f"{where}{key}: expected {rows * cols} numbers or a {rows}x{cols} matrix, got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{where}{key}: holds NaN or inf")
    return values.reshape(rows, cols)


def _camera(section: dict[str, Any], width: int, height: int, where: str) -> CameraModel:
    if "K" not in section:
        raise ValueError(f"{where}K: missing")
    K = _matrix(section, "K", 3, 3, where)
    P = _matrix(section, "P", 3, 4, where) if "P" in section else None
    try:
        D = np.asarray(section.get("D") or [], dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"{where}D: expected a list of numbers, got {section['D']!r}") from None
    try:
        return CameraModel.from_matrices(width, height, K, P, D)
    except ValueError as exc:
        raise ValueError(f"{where}{exc}") from None


def _check_keys(section: Any, allowed: set[str], where: str) -> None:
    if not isinstance(section, dict):
        raise ValueError(f"{where}expected a mapping of keys, got {type(section).__name__}")
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ValueError(f"{where}unknown key(s) {unknown} (expected some of {sorted(allowed)})")


def _rigid_transform(section: dict[str, Any], where: str) -> np.ndarray:
    T = _matrix(section, "T_cam_lidar", 4, 4, where)
    if not np.allclose(T[3], [0, 0, 0, 1]) or not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-3):
        raise ValueError(f"{where}T_cam_lidar: expected a rigid transform (rotation, translation; last row 0 0 0 1)")
    return T


def load_calibration(path: PathLike) -> Calibration:
    """Reads the YAML calibration described in this module's docstring."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    where = f"{path}: "
    _check_keys(data, _TOP_KEYS, where)
    for key in ("width", "height"):
        if type(data.get(key)) is not int or data[key] <= 0:  # bool is an int subclass: `width: true` is wrong
            raise ValueError(f"{where}{key}: expected a positive integer, got {data.get(key)!r}")
    width, height = data["width"], data["height"]
    camera = _camera(data, width, height, where)
    T = _rigid_transform(data, where) if "T_cam_lidar" in data else None
    right = None
    if "right" in data:
        right_where = f"{path}: right "
        _check_keys(data["right"], _RIGHT_KEYS, right_where)
        if "P" not in data["right"]:
            raise ValueError(f"{right_where}P: missing (the right camera's P carries the stereo baseline)")
        right = _camera(data["right"], width, height, right_where)
    return Calibration(camera=camera, T_cam_lidar=T, right_camera=right)


def load_any_calibration(path: PathLike, *, image_size: tuple[int, int] | None = None) -> Calibration:
    """A KITTI calib .txt (image_2 as the camera, image_3 as the right one) or a YAML calibration.

    image_size (width, height) is needed for KITTI only: its calib files do not hold it.
    """
    suffix = Path(path).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return load_calibration(path)
    if suffix == ".txt":
        if image_size is None:
            raise ValueError(f"{path}: a KITTI calibration does not hold the image size; pass image_size")
        camera, T = read_kitti_calib(path, image_size=image_size, camera=2)
        right, _ = read_kitti_calib(path, image_size=image_size, camera=3)
        return Calibration(camera=camera, T_cam_lidar=T, right_camera=right)
    raise ValueError(f"{path}: unsupported calibration file type {suffix!r} (expected .yaml, .yml or .txt)")
