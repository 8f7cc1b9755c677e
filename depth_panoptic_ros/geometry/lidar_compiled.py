"""The projection of lidar.py as one compiled numba kernel: transform, projection and z-buffer in one walk over
the points, instead of ~20 numpy passes and a lexsort of the points inside the image.

Why: the numpy version took ~9 ms CPU for a 120k-point sweep (BENCHMARKS.md, "Geometry and products per
frame"). The kernel computes numpy's float64 arithmetic in the same order: the squared range as
(x x + y y) + z z, each homogeneous coordinate as OpenBLAS's dgemm computes the (N, 3) @ (3, 3) product on a
CPU with FMA (fma(z, m2, fma(y, m1, x m0)), checked bit for bit on a real sweep), then + the fourth column,
then u / w + 0.5 floored. On a CPU without FMA numpy's product rounds twice, so a w may differ in its last bit;
a depth pixel changes only if that bit moves the float32 value or breaks a tie. The nearest point wins a pixel,
the lower point index on a tie (what the stable lexsort gave). No image-sized array is cleared per call: the
pixels already hit are a sparse set (slot[p] points into the list of hit pixels, valid when it points back).
"""

from __future__ import annotations

import numpy as np
from numba import types

from depth_panoptic_ros.compiled import fma64, kernel

_IN_M = types.Array(types.float64, 2, "A", readonly=True)
_SIGNATURES = [
    types.int64(
        types.Array(dtype, 2, "A", readonly=True),
        _IN_M,
        types.float64,
        types.float64,
        types.float32[:, ::1],
        types.int32[:],
        types.int64[:],
        types.int64[:],
        types.float64[:],
    )
    for dtype in (types.float32, types.float64)
]


@kernel(*_SIGNATURES)
def project_nearest(
    points: np.ndarray,
    M: np.ndarray,
    max_range: float,
    min_depth: float,
    depth: np.ndarray,
    slot: np.ndarray,
    pixel: np.ndarray,
    point: np.ndarray,
    nearest: np.ndarray,
) -> int:
    """Number n of pixels hit; pixel[:n] (flat index, in the order first hit), point[:n] (row of the winning
    point) and depth (zeros on entry) at those pixels written. points: (N, 3+) xyz; M: (3, 4) P @ T_cam_lidar.
    slot: int32 scratch of depth.size (any content); pixel, point, nearest (its float64 w): scratch of N."""
    height, width = depth.shape
    flat = depth.reshape(-1)
    limit = max_range * max_range
    n = 0
    for i in range(points.shape[0]):
        x, y, z = np.float64(points[i, 0]), np.float64(points[i, 1]), np.float64(points[i, 2])
        if not (x * x + y * y) + z * z <= limit:  # NaN and inf fail here
            continue
        w = fma64(z, M[2, 2], fma64(y, M[2, 1], x * M[2, 0])) + M[2, 3]
        if not w >= min_depth:
            continue
        col = np.floor((fma64(z, M[0, 2], fma64(y, M[0, 1], x * M[0, 0])) + M[0, 3]) / w + 0.5)
        row = np.floor((fma64(z, M[1, 2], fma64(y, M[1, 1], x * M[1, 0])) + M[1, 3]) / w + 0.5)
        if not (col >= 0 and col < width and row >= 0 and row < height):
            continue
        p = np.int64(row) * width + np.int64(col)
        k = slot[p]
        if k < 0 or k >= n or pixel[k] != p:  # first hit of this pixel
            slot[p], pixel[n], point[n], nearest[n] = n, p, i, w
            n += 1
        elif w < nearest[k]:
            point[k], nearest[k] = i, w
    for k in range(n):
        flat[pixel[k]] = np.float32(nearest[k])
    return n
