"""The bird's-eye grid's per-cell reduction (bev_grid.py) as one compiled numba kernel: map, band and extent
tests and the per-cell maximum of the key in one walk over the points.

Why: the numpy version made ~25 passes over the cloud (a blocked BLAS product for the map, masks, run starts,
gathers, np.maximum.at over the runs' first points), ~2.5 ms per 1024x2048 frame (BENCHMARKS.md, "Geometry and
products per frame"). The kernel computes the same float32 values: the map as OpenBLAS's sgemm rounds the
3-term products on CPUs with FMA (fma(a2, z, fma(a1, y, a0 x)), checked against np.matmul on 1 M points), then
the offset added; the band compared in float32 as numpy compares with a Python float. Every point counts (the
runs were a trick for np.maximum.at, whose result is the same over all points).
"""

from __future__ import annotations

import numpy as np
from numba import types

from depth_panoptic_ros.compiled import fma32, kernel

_IN_U32 = types.Array(types.uint32, 1, "A", readonly=True)
_ID_BITS = 2**32 - 1  # keys above it have a kind > ignored


@kernel(
    types.void(
        types.Array(types.float32, 2, "A", readonly=True),
        _IN_U32,
        _IN_U32,
        types.Array(types.float32, 2, "A", readonly=True),
        types.Array(types.float32, 1, "A", readonly=True),
        types.float32,
        types.float32,
        types.int64,
        types.int64,
        types.Array(types.int64, 1, "A", readonly=True),
        types.int64[:],
    )
)
def cell_keys(
    xyz: np.ndarray,
    label: np.ndarray,
    instance: np.ndarray,
    affine: np.ndarray,
    offset: np.ndarray,
    low: float,
    high: float,
    rows: int,
    cols: int,
    kind_of_id: np.ndarray,
    best: np.ndarray,
) -> None:
    """best[row * cols + col]: the largest key ``kind_of_id[label] | instance`` with a kind (> 2^32 - 1) of the
    points (xyz (n, 3), camera frame) whose mapped (col, row, height) = affine @ xyz + offset lies in
    [0, cols) x [0, rows) x [low, high]; 0 for cells without one. Labels beyond kind_of_id's last slot read it."""
    best[:] = 0
    last = len(kind_of_id) - 1
    for i in range(xyz.shape[0]):
        x, y, z = xyz[i, 0], xyz[i, 1], xyz[i, 2]
        height = fma32(affine[2, 2], z, fma32(affine[2, 1], y, affine[2, 0] * x)) + offset[2]
        if not (height >= low and height <= high):  # NaN fails here
            continue
        col = fma32(affine[0, 2], z, fma32(affine[0, 1], y, affine[0, 0] * x)) + offset[0]
        row = fma32(affine[1, 2], z, fma32(affine[1, 1], y, affine[1, 0] * x)) + offset[1]
        if not (col >= 0 and col < cols and row >= 0 and row < rows):
            continue
        key = kind_of_id[min(np.int64(label[i]), last)] | np.int64(instance[i])
        cell = np.int64(row) * cols + np.int64(col)  # truncation is the floor: both are >= 0
        if key > _ID_BITS and key > best[cell]:
            best[cell] = key
