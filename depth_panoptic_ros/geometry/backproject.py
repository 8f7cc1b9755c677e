"""Depth image -> 3D points of the camera that took the image, and the panoptic point cloud built from them.

Pixel (u, v) with depth z back-projects to z * inv(intrinsics) @ [u, v, 1]: the inverse of project_points for
that camera (pixel centers at integer coordinates). Points are in the optical frame of the camera P describes
(for a P with a fourth column, e.g. KITTI's P2, that camera's frame, not the reference camera's).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from depth_panoptic_ros.geometry.backproject_compiled import kept_points
from depth_panoptic_ros.geometry.camera import CameraModel

_NO_IMAGE = np.zeros((0, 0, 3), np.uint8)


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


def _check_ids(ids: np.ndarray, name: str, camera: CameraModel) -> np.ndarray:
    ids = _check_map(ids, name, camera.shape)
    if not np.issubdtype(ids.dtype, np.integer) or ids.min(initial=0) < 0:
        raise ValueError(f"{name}: expected non-negative integer ids, got {ids.dtype} min {ids.min(initial=0)}")
    return ids


def pixel_rays(camera: CameraModel, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(x / z of shape (H', W') or, without skew, (1, W'), y / z of shape (H', 1)) float32 of the ray through every
    stride-th pixel.

    A point at depth z is (ray_x * z, ray_y * z, z); kept apart from any depth map so that callers measuring only
    some pixels (instance_depth: those with valid depth) multiply only those, with the same float32 results.
    The rays of the last few cameras are kept (read-only): a stream's camera is the same frame after frame.
    Without skew every row of ray_x is the same and ray_x is that one row (numpy broadcasts it): the kernels that
    read it per pixel then read one row from cache instead of a second full-size map.
    """
    intrinsics = np.ascontiguousarray(camera.intrinsics, dtype=np.float64)
    return _rays(intrinsics.tobytes(), camera.width, camera.height, stride)


@lru_cache(maxsize=4)
def _rays(intrinsics: bytes, width: int, height: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    inverse = np.linalg.inv(np.frombuffer(intrinsics).reshape(3, 3)).astype(np.float32)
    u = np.arange(0, width, stride, dtype=np.float32)[None, :]
    v = np.arange(0, height, stride, dtype=np.float32)[:, None]
    if inverse[0, 1] == 0:  # the skew term adds +-0 to every row: all rows equal the first, bit for bit
        ray_x = inverse[0, 0] * u + inverse[0, 1] * v[:1] + inverse[0, 2]
    else:
        ray_x = inverse[0, 0] * u + inverse[0, 1] * v + inverse[0, 2]
    rays = ray_x, inverse[1, 1] * v + inverse[1, 2]
    for ray in rays:
        ray.flags.writeable = False
    return rays


def _sampled_depth(depth: np.ndarray, camera: CameraModel, stride: int) -> np.ndarray:
    """float32 depth of every stride-th pixel (a view when the map is float32 already)."""
    depth = _check_map(depth, "depth", camera.shape)
    stride = _check_stride(stride)
    return np.asarray(depth[::stride, ::stride], dtype=np.float32)


def _check_stride(stride: int) -> int:
    if not isinstance(stride, int | np.integer) or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    return int(stride)


def backproject(depth: np.ndarray, camera: CameraModel, stride: int = 1) -> np.ndarray:
    """(H', W', 3) float32 xyz of every stride-th pixel (H' = ceil(H / stride)); NaN where depth is 0/invalid."""
    z = _sampled_depth(depth, camera, stride).copy()
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
    label_divisor: int | None = None,
    stride: int = 1,
    max_range: float = np.inf,
    organized: bool = False,
) -> PanopticCloud:
    """The 3D panoptic cloud of a depth map and its per-pixel color / class / panoptic maps (all H x W).

    Points without depth or farther than max_range (Euclidean, meters) are NaN in an organized cloud and
    dropped from a flat one. Missing maps give zeros (black, void). The class label comes from ``class_ids`` or,
    with ``label_divisor``, from the panoptic id (class id * label_divisor + instance) of each kept point, so
    that no full-size class map has to be made for a cloud that keeps a fraction of the pixels.
    """
    if class_ids is not None and label_divisor is not None:
        raise ValueError("build_cloud: give class_ids or label_divisor, not both")
    if label_divisor is not None and (panoptic_ids is None or label_divisor < 1):
        raise ValueError(f"label_divisor ({label_divisor}) needs panoptic_ids and must be >= 1")
    if rgb is not None:
        rgb = _check_map(rgb, "rgb", camera.shape + (3,))
        if rgb.dtype != np.uint8:
            raise ValueError(f"rgb: expected uint8, got {rgb.dtype}")
    class_ids = None if class_ids is None else _check_ids(class_ids, "class_ids", camera)
    panoptic_ids = None if panoptic_ids is None else _check_ids(panoptic_ids, "panoptic_ids", camera)
    if organized:
        return _organized_cloud(depth, camera, rgb, class_ids, panoptic_ids, label_divisor, stride, max_range)
    xyz, pixel, colors = _kept_points(depth, camera, rgb, stride, max_range)
    n = len(pixel)
    label = np.zeros(n, np.uint32)
    if class_ids is not None:
        label = np.take(class_ids, pixel).astype(np.uint32)
    instance = np.zeros(n, np.uint32) if panoptic_ids is None else np.take(panoptic_ids, pixel).astype(np.uint32)
    if label_divisor is not None:
        label = instance // np.uint32(label_divisor)
    return PanopticCloud(
        xyz=xyz,
        rgb=colors,
        label=label,
        instance=instance,
    )


def _kept_points(
    depth: np.ndarray, camera: CameraModel, rgb: np.ndarray | None, stride: int, max_range: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(M, 3) float32 points of the stride-th pixels with valid depth within max_range, their flat pixel index in
    the full-size image, in raster order, and their (M, 3) uint8 colors (black without an image).

    One compiled walk (backproject_compiled.py): only the kept pixels are multiplied out, with the same float32
    products as backproject, and the flat index then gathers the other per-pixel fields.
    """
    depth = np.asarray(_check_map(depth, "depth", camera.shape), dtype=np.float32)
    ray_x, ray_y = pixel_rays(camera, _check_stride(stride))
    grid = ray_y.shape[0] * ray_x.shape[1]
    xyz, pixel = np.empty((grid, 3), np.float32), np.empty(grid, np.int64)
    colors = np.zeros((grid, 3), np.uint8) if rgb is None else np.empty((grid, 3), np.uint8)
    image = _NO_IMAGE if rgb is None else rgb
    n = kept_points(depth, ray_x, ray_y, image, stride, np.float32(max_range) ** 2, xyz, pixel, colors)
    return xyz[:n], pixel[:n], colors[:n]


def _organized_cloud(
    depth: np.ndarray,
    camera: CameraModel,
    rgb: np.ndarray | None,
    class_ids: np.ndarray | None,
    panoptic_ids: np.ndarray | None,
    label_divisor: int | None,
    stride: int,
    max_range: float,
) -> PanopticCloud:
    """The cloud on the stride-th pixel grid, NaN where a point is invalid or beyond max_range."""
    xyz = backproject(depth, camera, stride)
    sub = (slice(None, None, stride), slice(None, None, stride))
    valid = np.isfinite(xyz[..., 2])
    if np.isfinite(max_range):
        x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
        valid &= x * x + y * y + z * z <= np.float32(max_range) ** 2
    xyz[~valid] = np.nan
    grid = xyz.shape[:2]
    instance = np.zeros(grid, np.uint32) if panoptic_ids is None else panoptic_ids[sub].astype(np.uint32)
    label = np.zeros(grid, np.uint32) if class_ids is None else class_ids[sub].astype(np.uint32)
    if label_divisor is not None:
        label = instance // np.uint32(label_divisor)
    return PanopticCloud(
        xyz=xyz, rgb=np.zeros(grid + (3,), np.uint8) if rgb is None else rgb[sub], label=label, instance=instance
    )
