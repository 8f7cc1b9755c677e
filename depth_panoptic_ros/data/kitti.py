"""KITTI file formats: velodyne sweeps (.bin), object/tracking calibration (.txt) and depth PNGs (uint16 / 256).

A velodyne point X projects into image_<camera> as P<camera> . R0_rect . Tr_velo_to_cam . X, so the calibration
is returned as the CameraModel with P = P<camera> and T_cam_lidar = R0_rect . Tr_velo_to_cam (both as 4x4).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from depth_panoptic_ros.geometry.camera import CameraModel

DEPTH_PNG_SCALE = 256.0  # KITTI depth devkit: meters = value / 256, 0 = invalid
_MAX_PNG_DEPTH = np.iinfo(np.uint16).max / DEPTH_PNG_SCALE

# The object benchmark writes "R0_rect:" and "Tr_velo_to_cam:", the tracking benchmark "R_rect" and "Tr_velo_cam".
_KEY_ALIASES = {"R_rect": "R0_rect", "Tr_velo_cam": "Tr_velo_to_cam"}

PathLike = str | os.PathLike


def read_velodyne_bin(path: PathLike) -> np.ndarray:
    """(N, 4) float32 x, y, z, reflectance in the velodyne frame."""
    raw = np.fromfile(path, dtype="<f4")
    if raw.size % 4:
        raise ValueError(f"{path}: a KITTI velodyne file holds 4 float32 per point, got {raw.size} floats")
    return raw.reshape(-1, 4).astype(np.float32, copy=False)


def read_points(path: PathLike) -> np.ndarray:
    """(N, 3+) float32 points from a KITTI .bin sweep or a .npy array (extra columns, e.g. intensity, kept)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".bin":
        return read_velodyne_bin(path)
    if suffix == ".npy":
        points = np.load(path, allow_pickle=False)
        if points.ndim != 2 or points.shape[1] < 3 or not np.issubdtype(points.dtype, np.floating):
            raise ValueError(f"{path}: expected an (N, 3+) float array, got {points.dtype} {points.shape}")
        return points.astype(np.float32, copy=False)
    raise ValueError(f"{path}: unsupported point file type {suffix!r} (expected .bin or .npy)")


def _read_calib_entries(path: PathLike) -> dict[str, np.ndarray]:
    entries = {}
    for line_no, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        key, _, values = line.strip().partition(" ")
        key = key.rstrip(":")
        try:
            entries[_KEY_ALIASES.get(key, key)] = np.array(values.split(), dtype=np.float64)
        except ValueError as exc:
            raise ValueError(f"{path}:{line_no}: {key}: values are not numbers ({exc})") from None
    return entries


def _calib_matrix(entries: dict[str, np.ndarray], key: str, shape: tuple[int, int], path: PathLike) -> np.ndarray:
    if key not in entries:
        raise ValueError(f"{path}: missing calibration key {key!r} (found {sorted(entries)})")
    values = entries[key]
    if values.size != shape[0] * shape[1]:
        raise ValueError(f"{path}: {key}: expected {shape[0] * shape[1]} values, got {values.size}")
    matrix = np.eye(4)
    matrix[: shape[0], : shape[1]] = values.reshape(shape)
    return matrix


def read_kitti_calib(path: PathLike, *, image_size: tuple[int, int], camera: int = 2) -> tuple[CameraModel, np.ndarray]:
    """(CameraModel of image_<camera>, 4x4 T_cam_lidar) from a KITTI object/tracking calib file.

    image_size is (width, height): the calib file does not hold it and KITTI frames differ in size.
    """
    if camera not in (0, 1, 2, 3):
        raise ValueError(f"KITTI camera must be 0, 1, 2 or 3, got {camera}")
    entries = _read_calib_entries(path)
    P = _calib_matrix(entries, f"P{camera}", (3, 4), path)[:3]
    R0 = _calib_matrix(entries, "R0_rect", (3, 3), path)
    Tr = _calib_matrix(entries, "Tr_velo_to_cam", (3, 4), path)
    width, height = image_size
    model = CameraModel.from_matrices(width, height, K=P[:, :3], P=P)
    return model, R0 @ Tr


def read_depth_png(path: PathLike) -> np.ndarray:
    """(H, W) float32 meters from a KITTI uint16 depth PNG (0 = invalid)."""
    image = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: cannot read as an image")
    if image.dtype != np.uint16 or image.ndim != 2:
        raise ValueError(f"{path}: a depth PNG must be single-channel uint16, got {image.dtype} {image.shape}")
    return image.astype(np.float32) / np.float32(DEPTH_PNG_SCALE)


def write_depth_png(path: PathLike, depth: np.ndarray) -> None:
    """Writes (H, W) meters as a KITTI uint16 depth PNG (0 = invalid; resolution 1/256 m, at most ~256 m)."""
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth: expected an (H, W) array, got shape {depth.shape}")
    if not np.all(np.isfinite(depth)) or depth.min(initial=0) < 0 or depth.max(initial=0) > _MAX_PNG_DEPTH:
        raise ValueError(
            f"depth: a KITTI depth PNG holds finite values in [0, {_MAX_PNG_DEPTH:.3f}] m, "
            f"got [{np.nanmin(depth, initial=0):.3f}, {np.nanmax(depth, initial=0):.3f}]"
        )
    encoded = np.rint(depth.astype(np.float64) * DEPTH_PNG_SCALE).astype(np.uint16)
    if not cv2.imwrite(os.fspath(path), encoded):
        raise OSError(f"{path}: could not write the depth PNG")
