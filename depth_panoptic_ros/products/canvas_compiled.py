"""The outlined text label of canvas.py (put_text) composited by a compiled numba kernel.

Why: the label used to be stamped by nine anti-aliased cv2.putText calls (eight dark copies at the one-pixel
offsets, then the text), ~1.1 ms per label at 1024x2048 (scale 1, thickness 2): ~33 ms for the 30 labels of a
street frame, the largest per-frame CPU cost of the products (BENCHMARKS.md, "Geometry and products per
frame"). Now the text is rasterized once, as a coverage mask, and the kernel blends the eight shifted copies and
the text in one pass over the label's box: the same compositing in real arithmetic, rounded once instead of
after every stamp.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from depth_panoptic_ros.compiled import COMPILE

_UNCOVERED = (1 - np.arange(256, dtype=np.float32) / np.float32(255)).astype(np.float32)  # 1 - coverage


@numba.njit(
    types.void(
        types.uint8[:, :, :],
        types.Array(types.uint8, 2, "C", readonly=True),
        types.int64,
        types.int64,
        types.float32[:],
        types.float32[:],
    ),
    **COMPILE,
)
def blend_outlined(
    region: np.ndarray, coverage: np.ndarray, row0: int, col0: int, color: np.ndarray, outline: np.ndarray
) -> None:
    """In place: ``region`` (h, w, 3) under ``outline`` where a one-pixel-shifted copy of the text covers it and
    under ``color`` where the text does. ``coverage``: the text's anti-aliased mask (255 = covered), with region
    pixel (i, j) at coverage[row0 + i, col0 + j] and at least one pixel of margin on every side.

    With a the text's coverage of a pixel and a_k that of the eight shifted copies, the pixel becomes
    (p prod_k (1 - a_k) + outline (1 - prod_k (1 - a_k))) (1 - a) + color a: the eight stamps then the text,
    each blended over the last."""
    height, width = region.shape[:2]
    for i in range(height):
        r = row0 + i
        for j in range(width):
            c = col0 + j
            kept = np.float32(1)
            for dr in range(-1, 2):
                for dc in range(-1, 2):
                    if dr != 0 or dc != 0:
                        kept *= _UNCOVERED[coverage[r + dr, c + dc]]
            a = np.float32(1) - _UNCOVERED[coverage[r, c]]
            if kept == 1 and a == 0:  # most of the box: no stroke within a pixel
                continue
            for ch in range(3):
                under = np.float32(region[i, j, ch]) * kept + outline[ch] * (np.float32(1) - kept)
                region[i, j, ch] = np.uint8(np.rint(under * (np.float32(1) - a) + color[ch] * a))
