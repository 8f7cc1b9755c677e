"""The ground fit's sampled points and its candidates' support (ground.py) as compiled numba kernels.

Why: as numpy passes (a divmod, fancy-index gathers and a stack for the points, four ufunc passes over the
(scored points x trials) distance matrix) they took ~0.2 of the fit's ~0.8 ms on a real KITTI frame
(BENCHMARKS.md, "Geometry and products per frame"). The values are numpy's: the points the same float64
products of the float32 rays, the support counted on the same float32 distances (the matrix product stays
numpy's, i.e. the BLAS's). The measured pixels stay np.flatnonzero's: a compiled walk was no faster.
"""

from __future__ import annotations

import numpy as np
from numba import types

from depth_panoptic_ros.compiled import kernel

_IN_F32 = types.Array(types.float32, 2, "A", readonly=True)
_IN_I64 = types.Array(types.int64, 1, "A", readonly=True)


@kernel(types.void(_IN_F32, _IN_F32, _IN_F32, _IN_I64, types.int64, types.float64[:, :]))
def sample_points(
    depth: np.ndarray, ray_x: np.ndarray, ray_y: np.ndarray, pick: np.ndarray, top: int, points: np.ndarray
) -> None:
    """points[k] = (ray_x z, ray_y z, z) in float64 of the pixel at flat index pick[k] of depth[top:], z its
    depth; ray_x (H, W), or (1, W) for every row, and ray_y (H, 1) as pixel_rays gives them."""
    width = depth.shape[1]
    one_row = ray_x.shape[0] == 1
    for k in range(len(pick)):
        row, col = pick[k] // width + top, pick[k] % width
        z = np.float64(depth[row, col])
        points[k, 0] = np.float64(ray_x[0 if one_row else row, col]) * z
        points[k, 1] = np.float64(ray_y[row, 0]) * z
        points[k, 2] = z


@kernel(types.void(_IN_F32, types.Array(types.float32, 1, "A", readonly=True), types.float32, types.int64[:]))
def count_support(distance: np.ndarray, offsets: np.ndarray, limit: float, out: np.ndarray) -> None:
    """out[j] = how many rows i have |distance[i, j] + offsets[j]| <= limit (float32 sums, as numpy's)."""
    out[:] = 0
    for i in range(distance.shape[0]):
        for j in range(distance.shape[1]):
            out[j] += abs(distance[i, j] + offsets[j]) <= limit
