"""The beam (ring) geometry of a spinning LiDAR, measured from its sweeps, and where those rings cross an image.

Why: the depth-completion benchmark has dense ground truth (accumulated LiDAR) but needs the input one real
sweep would give. One sweep does not sample the image at random or on every n-th row: each of its beams
(rings) keeps a fixed elevation angle seen from the LiDAR, so the rings bunch up and spread apart across the
image with the scene's depth and the LiDAR-camera offset. A pixel is an input exactly when a ring's elevation
lies within the elevation span the pixel covers at its ground-truth depth.

KITTI .bin sweeps hold their points ring by ring, each ring one turn of increasing azimuth starting ahead of the
car; a ring ends where the azimuth (taken in [0, 2 pi)) falls back by more than pi. The beam's elevation is the
median elevation of its points (robust to the few returns of a neighboring beam and to the lasers' small
offsets from the sensor origin).
"""

from __future__ import annotations

import numpy as np

KITTI_RINGS = 64  # HDL-64E


def ring_elevations(points: np.ndarray) -> np.ndarray:
    """(rings,) median elevation angle (radians, LiDAR frame, sorted ascending) of each ring of one sweep whose
    points are in ring order (KITTI .bin); points (N, 3+) in the LiDAR frame."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] < 3 or points.shape[0] < 2:
        raise ValueError(f"points: expected shape (N >= 2, 3+), got {points.shape}")
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    azimuth = np.mod(np.arctan2(y, x), 2 * np.pi)
    elevation = np.arctan2(z, np.hypot(x, y))
    starts = np.concatenate([[0], np.flatnonzero(np.diff(azimuth) < -np.pi) + 1])
    ring = np.repeat(np.arange(starts.size), np.diff(np.append(starts, points.shape[0])))
    order = np.lexsort((elevation, ring))  # by ring, then elevation: each ring's median is its middle element
    sizes = np.bincount(ring)
    ends = np.cumsum(sizes)
    sorted_elevation = elevation[order]
    median = (sorted_elevation[ends - (sizes + 1) // 2] + sorted_elevation[ends - sizes // 2 - 1]) / 2
    return np.sort(median)


def measured_ring_elevations(sweeps: list[np.ndarray], rings: int = KITTI_RINGS) -> np.ndarray:
    """(rings,) per-ring median over the sweeps that split into exactly ``rings`` rings (sorted ascending)."""
    per_sweep = [elevations for elevations in map(ring_elevations, sweeps) if elevations.size == rings]
    if not per_sweep:
        raise ValueError(f"no sweep splits into {rings} rings: the points are not in KITTI ring order")
    return np.median(np.stack(per_sweep), axis=0)


def ring_crossings(depth: np.ndarray, P: np.ndarray, T_cam_lidar: np.ndarray, elevations: np.ndarray) -> np.ndarray:
    """Mask of the pixels with depth > 0 that a ring crosses: some ring elevation lies in the elevation span,
    seen from the LiDAR, of the pixel's vertical extent (v - 1/2 to v + 1/2) at the pixel's depth.

    depth: (H, W) meters of the camera whose (3, 4) projection is P (the stored depth being the homogeneous w of
    P @ X, as project_points writes it); T_cam_lidar (4, 4) maps LiDAR points into the frame P projects from.
    """
    depth = np.asarray(depth, dtype=np.float64)
    P, T = np.asarray(P, dtype=np.float64), np.asarray(T_cam_lidar, dtype=np.float64)
    if depth.ndim != 2 or P.shape != (3, 4) or T.shape != (4, 4):
        shapes = f"{depth.shape}, {P.shape}, {T.shape}"
        raise ValueError(f"expected (H, W) depth, (3, 4) P and (4, 4) T_cam_lidar, got {shapes}")
    M = P @ T  # LiDAR point -> homogeneous pixel; inverted: pixel (u, v) at depth w -> LiDAR point
    inverse = np.linalg.inv(M[:, :3])
    row, col = np.nonzero(depth > 0)
    w = depth[row, col]
    bounds = []
    for dv in (-0.5, 0.5):
        homogeneous = np.stack([col * w, (row + dv) * w, w]) - M[:, 3:]
        x, y, z = inverse @ homogeneous
        bounds.append(np.arctan2(z, np.hypot(x, y)))
    low, high = np.minimum(*bounds), np.maximum(*bounds)
    elevations = np.sort(np.asarray(elevations, dtype=np.float64))
    crossed = np.searchsorted(elevations, high) > np.searchsorted(elevations, low)  # a ring in [low, high)
    mask = np.zeros(depth.shape, bool)
    mask[row[crossed], col[crossed]] = True
    return mask
