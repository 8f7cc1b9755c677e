"""The flat panoptic cloud's points (backproject.py) as one compiled numba kernel: valid depth, back-projection,
range test and the color gather of every stride-th pixel in one walk, instead of ~12 numpy passes.

Why: build_cloud took ~7 ms CPU at 1024x2048 (BENCHMARKS.md, "Geometry and products per frame"). The kernel
computes numpy's float32 arithmetic in the same order: x = ray_x * z, y = ray_y * z, the squared range
(x x + y y) + z z against max_range² rounded to float32; points stay in raster order.
"""

from __future__ import annotations

import numpy as np
from numba import types

from depth_panoptic_ros.compiled import kernel

_IN_F32 = types.Array(types.float32, 2, "A", readonly=True)


@kernel(
    types.int64(
        _IN_F32,
        _IN_F32,
        _IN_F32,
        types.Array(types.uint8, 3, "A", readonly=True),
        types.int64,
        types.float32,
        types.float32[:, :],
        types.int64[:],
        types.uint8[:, :],
    )
)
def kept_points(
    depth: np.ndarray,
    ray_x: np.ndarray,
    ray_y: np.ndarray,
    rgb: np.ndarray,
    stride: int,
    max_range_squared: float,
    xyz: np.ndarray,
    pixel: np.ndarray,
    colors: np.ndarray,
) -> int:
    """Number n of kept points: the stride-th pixels with finite depth > 0 within the range (inf: no limit);
    xyz[:n], their flat pixel index in the full image pixel[:n] and, when ``rgb`` is (H, W, 3) and not empty,
    their colors colors[:n] written. ray_x (H', W') or (1, W'), ray_y (H', 1): pixel_rays(camera, stride)."""
    width = depth.shape[1]
    use_rgb = rgb.shape[0] > 0
    n = 0
    for i in range(ray_y.shape[0]):
        row = i * stride
        ray, rays_x = ray_y[i, 0], ray_x[min(i, ray_x.shape[0] - 1)]
        for j in range(ray_x.shape[1]):
            col = j * stride
            z = depth[row, col]
            if not (z > 0 and z < np.inf):
                continue
            x, y = rays_x[j] * z, ray * z
            if not x * x + y * y + z * z <= max_range_squared:
                continue
            xyz[n, 0], xyz[n, 1], xyz[n, 2] = x, y, z
            pixel[n] = row * width + col
            if use_rgb:
                colors[n, 0], colors[n, 1], colors[n, 2] = rgb[row, col, 0], rgb[row, col, 1], rgb[row, col, 2]
            n += 1
    return n
