"""Depth image -> 3D points of the camera that took the image, and the panoptic point cloud built from them.

Pixel (u, v) with depth z back-projects to z * inv(intrinsics) @ [u, v, 1]: the inverse of project_points for
that camera (pixel centers at integer coordinates). Points are in the optical frame of the camera P describes
(for a P with a fourth column, e.g. KITTI's P2, that camera's frame, not the reference camera's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_panoptic_ros.geometry.camera import CameraModel


@dataclass(frozen=True)
class PanopticCloud:
    """Points with color and panoptic labels, organized (H', W', ...) or flat (M, ...).

    xyz: float32 meters, NaN for invalid points of an organized cloud; rgb: uint8 (black without an image);
    label: uint32 class id; instance: uint32 panoptic id (class id * label divisor + instance); 0 = void/none.
    """

    xyz: np.ndarray
    rgb: np.ndarray
    label: np.ndarray
    instance: np.ndarray

    def __post_init__(self) -> None:
        """Clouds are also assembled by hand (tests, tools): catch mismatches before they reach a byte layout."""
        grid = self.xyz.shape[:-1]
        if self.xyz.ndim not in (2, 3) or self.xyz.shape[-1] != 3:
            raise ValueError(f"cloud xyz: expected (M, 3) or (H, W, 3), got {self.xyz.shape}")
        expected = {"rgb": (grid + (3,), np.uint8), "label": (grid, np.uint32), "instance": (grid, np.uint32)}
        for name, (shape, dtype) in expected.items():
            array = getattr(self, name)
            if array.shape != shape or array.dtype != dtype:
                raise ValueError(f"cloud {name}: expected {np.dtype(dtype)} {shape}, got {array.dtype} {array.shape}")

    @property
    def organized(self) -> bool:
        return self.xyz.ndim == 3


def _check_map(array: np.ndarray, name: str, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(array)
    if array.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} (the camera's image), got {array.shape}")
    return array


def _sampled_ids(
    ids: np.ndarray | None, name: str, camera: CameraModel, sub: tuple[slice, slice], grid: tuple[int, int]
) -> np.ndarray:
    if ids is None:
        return np.zeros(grid, np.uint32)
    ids = _check_map(ids, name, camera.shape)
    if not np.issubdtype(ids.dtype, np.integer) or ids.min(initial=0) < 0:
        raise ValueError(f"{name}: expected non-negative integer ids, got {ids.dtype} min {ids.min(initial=0)}")
    return ids[sub].astype(np.uint32)


def pixel_rays(camera: CameraModel, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(x / z of shape (H', W'), y / z of shape (H', 1)) float32 of the ray through every stride-th pixel.

    A point at depth z is (ray_x * z, ray_y * z, z); kept apart from any depth map so that callers measuring only
    some pixels (instance_depth: those with valid depth) multiply only those, with the same float32 results.
    """
    inverse = np.linalg.inv(camera.intrinsics).astype(np.float32)
    u = np.arange(0, camera.width, stride, dtype=np.float32)[None, :]
    v = np.arange(0, camera.height, stride, dtype=np.float32)[:, None]
    return inverse[0, 0] * u + inverse[0, 1] * v + inverse[0, 2], inverse[1, 1] * v + inverse[1, 2]


def backproject(depth: np.ndarray, camera: CameraModel, stride: int = 1) -> np.ndarray:
    """(H', W', 3) float32 xyz of every stride-th pixel (H' = ceil(H / stride)); NaN where depth is 0/invalid."""
    depth = _check_map(depth, "depth", camera.shape)
    if not isinstance(stride, int | np.integer) or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    z = depth[::stride, ::stride].astype(np.float32)
    z[~(z > 0) | ~np.isfinite(z)] = np.nan
    ray_x, ray_y = pixel_rays(camera, stride)
    xyz = np.empty(z.shape + (3,), dtype=np.float32)
    np.multiply(ray_x, z, out=xyz[..., 0])
    np.multiply(ray_y, z, out=xyz[..., 1])
    xyz[..., 2] = z
    return xyz


def build_cloud(
    depth: np.ndarray,
    camera: CameraModel,
    *,
    rgb: np.ndarray | None = None,
    class_ids: np.ndarray | None = None,
    panoptic_ids: np.ndarray | None = None,
    stride: int = 1,
    max_range: float = np.inf,
    organized: bool = False,
) -> PanopticCloud:
    """The 3D panoptic cloud of a depth map and its per-pixel color / class / panoptic maps (all H x W).

    Points without depth or farther than max_range (Euclidean, meters) are NaN in an organized cloud and
    dropped from a flat one. Missing maps give zeros (black, void).
    """
    xyz = backproject(depth, camera, stride)
    grid = xyz.shape[:2]
    sub = (slice(None, None, stride), slice(None, None, stride))
    colors = np.zeros(grid + (3,), np.uint8)
    if rgb is not None:
        rgb = _check_map(rgb, "rgb", camera.shape + (3,))
        if rgb.dtype != np.uint8:
            raise ValueError(f"rgb: expected uint8, got {rgb.dtype}")
        colors = rgb[sub]
    label = _sampled_ids(class_ids, "class_ids", camera, sub, grid)
    instance = _sampled_ids(panoptic_ids, "panoptic_ids", camera, sub, grid)

    valid = np.isfinite(xyz[..., 2])
    if np.isfinite(max_range):
        valid &= np.einsum("...i,...i->...", xyz, xyz) <= np.float32(max_range) ** 2
    if organized:
        xyz[~valid] = np.nan
        return PanopticCloud(xyz=xyz, rgb=colors, label=label, instance=instance)
    return PanopticCloud(xyz=xyz[valid], rgb=colors[valid], label=label[valid], instance=instance[valid])
