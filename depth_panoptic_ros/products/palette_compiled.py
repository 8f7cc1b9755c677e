"""The color overlay of palette.py (overlay_segments) as a compiled numba kernel: segment colors painted and
blended over the camera image in one pass over the runs; and the outlines' color set pixel by pixel.

Why: painting a full-size color image (np.repeat of packed words, then cv2.cvtColor) and blending it with
cv2.addWeighted wrote and read a second 6 MB image per product: ~1.3 ms of the panoptic and of the depth color
image at 1024x2048 (BENCHMARKS.md, "Geometry and products per frame"). Along a run the color is constant, so
the kernel blends the camera bytes with its segment's pattern of the three weighted channels, 16 pixels at a time:
whole float32 vectors, ~0.5 ms. It rounds as addWeighted's vector code does on a CPU with FMA, bit for bit
(tested on every (pixel, color) pair against cv2): rint(fma(pixel, 1 - alpha, color * alpha)) in float32.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from depth_panoptic_ros.compiled import COMPILE, fma32, kernel

_BLOCK = 48  # bytes of 16 pixels: a whole number of float32 vectors of every width (4, 8, 16)
_IN_I64 = types.Array(types.int64, 1, "C", readonly=True)


@numba.njit(inline="always", **COMPILE)
def _blend(src: np.ndarray, dst: np.ndarray, keep: float, pattern: np.ndarray, n: int) -> None:
    """dst[:n] = rint(fma(src, keep, pattern)); inlined, so that a constant ``n`` makes whole vectors only.
    Slices indexed from 0: numba's negative-index wrap of an offset index would keep LLVM from vectorizing."""
    for q in range(n):
        dst[q] = np.uint8(np.int32(np.rint(fma32(np.float32(src[q]), keep, pattern[q]))))


@numba.njit(
    types.void(
        types.Array(types.uint8, 1, "C", readonly=True),
        _IN_I64,
        _IN_I64,
        _IN_I64,
        types.Array(types.uint8, 2, "C", readonly=True),
        types.float32,
        types.float32,
        types.uint8[::1],
    ),
    **COMPILE,
)
def blend_runs(
    rgb: np.ndarray,
    start: np.ndarray,
    length: np.ndarray,
    segment: np.ndarray,
    colors: np.ndarray,
    keep: float,
    alpha: float,
    out: np.ndarray,
) -> None:
    """out = rgb keep + colors[segment] alpha, rounded, byte by byte of the flat RGB images ``rgb`` and ``out``.
    start, length, segment: SegmentRuns (flat pixel index, pixels, index into ``colors`` (N, 3))."""
    patterns = np.empty((len(colors), _BLOCK), np.float32)  # per segment, not per run: real maps have ~10 k runs
    for k in range(len(colors)):
        for q in range(_BLOCK):
            patterns[k, q] = np.float32(colors[k, q % 3]) * alpha
    for r in range(len(start)):
        pattern = patterns[segment[r]]
        first, n = 3 * start[r], 3 * length[r]
        whole = n - n % _BLOCK
        for i in range(first, first + whole, _BLOCK):
            _blend(rgb[i:], out[i:], keep, pattern, _BLOCK)
        _blend(rgb[first + whole :], out[first + whole :], keep, pattern, n - whole)


@kernel(types.void(types.uint8[:], types.Array(types.int64, 1, "A", readonly=True), types.Array(types.uint8, 1, "A")))
def paint_pixels(rgb: np.ndarray, pixels: np.ndarray, color: np.ndarray) -> None:
    """The three bytes of each pixel ``pixels`` (flat indices) of the flat RGB image ``rgb`` set to ``color``.
    Why: numpy's rgb.reshape(-1, 3)[pixels] = color took ~0.3 ms for the ~19 k outline pixels of a real KITTI
    map, ~10x this loop."""
    for p in pixels:
        rgb[3 * p] = color[0]
        rgb[3 * p + 1] = color[1]
        rgb[3 * p + 2] = color[2]
