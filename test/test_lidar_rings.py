"""Ring (beam) elevations measured from sweeps in ring order, and the pixels those rings cross."""

from __future__ import annotations

import numpy as np
import pytest

from depth_panoptic_ros.geometry.lidar_rings import measured_ring_elevations, ring_crossings, ring_elevations

F, CX, CY = 100.0, 20.0, 15.0
P = np.array([[F, 0, CX, 0], [0, F, CY, 0], [0, 0, 1, 0]])
# KITTI axes: the LiDAR's x forward, y left, z up -> the camera's z forward, x right, y down.
T_CAM_LIDAR = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)


def sweep(elevations_deg: list[float], points_per_ring: int = 360) -> np.ndarray:
    """Points in ring order: each ring one turn of increasing azimuth from straight ahead, 10-30 m away."""
    rng = np.random.default_rng(0)
    rings = []
    for elevation in np.radians(elevations_deg):
        azimuth = np.linspace(0, 2 * np.pi, points_per_ring, endpoint=False)
        distance = rng.uniform(10, 30, points_per_ring)
        noise = rng.normal(0, 1e-4, points_per_ring)  # a few returns off the beam's elevation
        rings.append(distance[:, None] * np.stack([np.cos(azimuth), np.sin(azimuth), np.tan(elevation + noise)], 1))
    return np.concatenate(rings).astype(np.float32)


def test_ring_elevations_split_a_sweep_at_its_azimuth_wraps() -> None:
    beams = [2.0, -8.0, 0.5, -24.0]  # the firing order is not the elevation order
    np.testing.assert_allclose(np.degrees(ring_elevations(sweep(beams))), sorted(beams), atol=1e-2)
    sweeps = [sweep(beams), sweep(beams[:3])]  # the 3-ring sweep is not a 4-beam sensor's and is left out
    np.testing.assert_allclose(np.degrees(measured_ring_elevations(sweeps, rings=4)), sorted(beams), atol=1e-2)
    with pytest.raises(ValueError, match="no sweep splits into 64 rings"):
        measured_ring_elevations(sweeps)


def test_a_ring_crosses_the_rows_whose_elevation_span_holds_it() -> None:
    depth = np.full((30, 40), 10.0)  # a wall 10 m ahead: pixel row v is seen at elevation atan(-(v - CY) / F)
    depth[:, :5] = 0  # no ground truth: never an input
    elevations = np.arctan(-np.array([0.0, 3.0, 3.4]) / F)  # rows 15, 18 and 18 again (within 18 +- 0.5)
    mask = ring_crossings(depth, P, T_CAM_LIDAR, elevations)
    assert set(np.flatnonzero(mask.any(axis=1))) == {15, 18}
    assert mask[[15, 18], 5:].all() and not mask[:, :5].any()
    # Seen from a LiDAR 1 m above the camera, the ring at 0 deg meets the wall 1 m higher: 10 rows up.
    lifted = T_CAM_LIDAR.copy()
    lifted[1, 3] = -1.0  # the LiDAR origin is at camera y = -1 (up)
    assert set(np.flatnonzero(ring_crossings(depth, P, lifted, elevations[:1]).any(axis=1))) == {5}
