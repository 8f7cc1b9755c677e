"""The ground under the camera as a plane, fitted to the measured depth or given by the vehicle's transform.

The thing geometry check (panoptic/thing_geometry.py) asks how high above the ground each pixel of a candidate
lies: cars and people stand on the road and rise to their class's height, blobs on walls and trees do not. A
plane fitted to the frame's own LiDAR points follows the road's slope and the vehicle's pitch, which a fixed
mounting transform does not; the transform is the fallback when too few measured points lie on the ground.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_panoptic_ros.geometry.backproject import pixel_rays
from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.geometry.ground_compiled import count_support, sample_points

INLIER_M = 0.15  # a point within this distance of the plane is on it (LiDAR noise plus the road's unevenness)
MAX_TILT_COS = 0.9  # the plane's normal lies within ~26 degrees of the camera's up axis (-y): a level camera
MIN_INLIERS = 200  # fewer points on the best plane: no ground found
# nor when it holds less than this share of the points below the principal point: one LiDAR ring on a wall is a
# level arc that a plane fits (~5 % of a sweep); the road held 35-81 % of them on the shared KITTI frames
MIN_SHARE = 0.15
_SAMPLES = 4000  # points (drawn with replacement from more) the chosen plane is refined on
_SCORED = 1000  # of them, the points every candidate plane is scored on (the cost is trials x scored)
_TRIALS = 128  # random three-point planes (a 40 % inlier share finds a clean triple with p > 1 - 1e-3)


@dataclass(frozen=True)
class GroundPlane:
    """Height above the ground of a camera-frame point X (optical: x right, y down, z forward):
    ``normal @ X + offset``, with ``normal`` the unit vector pointing away from the ground."""

    normal: np.ndarray
    offset: float

    @classmethod
    def from_transform(cls, ground_T_camera: np.ndarray) -> GroundPlane:
        """The ground frame's z = 0 plane (z up from the ground, as the bird's-eye grid's frame)."""
        row = np.asarray(ground_T_camera, np.float64)[2]
        return cls(row[:3] / np.linalg.norm(row[:3]), float(row[3] / np.linalg.norm(row[:3])))

    def heights(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) camera-frame points -> (...) heights above the plane in meters."""
        return points @ self.normal + self.offset


def fit_ground_plane(depth: np.ndarray, camera: CameraModel, seed: int = 0) -> GroundPlane | None:
    """RANSAC plane through the measured (sparse) depth's points below the optical axis, refined by least
    squares on its inliers; None when fewer than MIN_INLIERS points or MIN_SHARE of them support it, or when it is
    not level (MAX_TILT_COS). Seeded: one frame, one plane."""
    depth = np.asarray(depth, np.float32)
    top = min(max(int(np.ceil(camera.cy)), 0), depth.shape[0])  # the pixels below the principal point
    found = np.flatnonzero(depth[top:] > 0)  # flat indices: ~6x faster than np.nonzero's pairs
    if len(found) < MIN_INLIERS:
        return None
    rng = np.random.default_rng(seed)
    pick = found[rng.integers(0, len(found), _SAMPLES)] if len(found) > _SAMPLES else rng.permutation(found)
    points = np.empty((len(pick), 3))
    sample_points(depth, *pixel_rays(camera), pick, top, points)
    a, b, c = (points[rng.integers(0, len(points), _TRIALS)] for _ in range(3))
    normals = np.cross(b - a, c - a)
    length = np.linalg.norm(normals, axis=1)
    normals /= np.where(length > 0, length, 1.0)[:, None]
    normals *= -np.sign(normals[:, 1:2] + (normals[:, 1:2] == 0))  # up is -y
    level = (-normals[:, 1] >= MAX_TILT_COS) & (length > 0)
    offsets = -(normals * a).sum(axis=1)
    support = np.empty(len(normals), np.int64)
    distance = points[:_SCORED].astype(np.float32) @ normals.T.astype(np.float32)  # the BLAS's float32 products
    count_support(distance, offsets.astype(np.float32), np.float32(INLIER_M), support)
    best = int(np.argmax(support * level))
    if not level[best] or support[best] < MIN_SHARE * len(distance):
        return None
    inliers = points[np.abs(points @ normals[best] + offsets[best]) <= INLIER_M]
    if len(inliers) < MIN_INLIERS:
        return None
    center = inliers.mean(axis=0)
    normal = np.linalg.svd(inliers - center, full_matrices=False)[2][2]
    normal = normal if normal[1] < 0 else -normal
    return GroundPlane(normal, float(-normal @ center))


def grid_samples(length: int, stride: int) -> np.ndarray:
    """Indices of the pixel nearest each cell's center along an axis of ``length`` pixels (ceil(length / stride)
    cells; the last one clipped to the image)."""
    return np.minimum(np.arange(-(-length // stride)) * stride + stride // 2, length - 1)


def grid_depth(depth: np.ndarray, stride: int) -> np.ndarray:
    """The depth of the pixel nearest the center of each ``stride`` x ``stride`` cell of the image: the
    ceil(H / stride) x ceil(W / stride) grid a network's stride-4 features cover."""
    return depth[grid_index(depth.shape[0], stride)][:, grid_index(depth.shape[1], stride)]


def grid_index(length: int, stride: int) -> slice | np.ndarray:
    """grid_samples as a slice (a view: ~0.3 ms less at 1024 x 2048) unless the last cell's center is clipped."""
    samples = grid_samples(length, stride)
    regular = samples[-1] == (len(samples) - 1) * stride + stride // 2
    return slice(stride // 2, None, stride) if regular else samples


def grid_heights(depth_grid: np.ndarray, camera: CameraModel, plane: GroundPlane, stride: int) -> np.ndarray:
    """Heights above ``plane`` (float32 meters, NaN without depth) of the pixels grid_depth sampled."""
    rows, cols = grid_samples(camera.height, stride), grid_samples(camera.width, stride)
    ray_x, ray_y = pixel_rays(camera)
    nx, ny, nz = plane.normal
    # normal @ (z * ray) + offset, with the ray's terms summed first (per row and column without skew)
    slope = nx * ray_x[rows if len(ray_x) > 1 else [0]][:, cols] + (ny * ray_y[rows] + nz)  # ray_x: 1 row sans skew
    heights = depth_grid * slope.astype(np.float32) + np.float32(plane.offset)
    return np.where(depth_grid > 0, heights, np.float32(np.nan))
