"""The 24-byte point of pointcloud2.py (pack_cloud) written by one compiled walk over the points.

Why: packing wrote the buffer column by column (nine strided numpy copies, each touching every cache line of a
~8 MB buffer at 1024x2048) and then scanned the coordinates for non-finite values: ~1.8 ms per 1024x2048
frame; one walk that writes each point's six words and notes a non-finite coordinate on the way takes ~1.0 ms
(BENCHMARKS.md, "Geometry and products per frame"). Byte-identical: the words are bit copies.
"""

from __future__ import annotations

import numpy as np
from numba import types

from depth_panoptic_ros.compiled import kernel

_EXPONENT = 0x7F800000  # a float32 whose exponent bits are all set is NaN or infinite


@kernel(
    types.boolean(
        types.Array(types.uint32, 2, "A", readonly=True),
        types.Array(types.uint8, 2, "A", readonly=True),
        types.Array(types.uint32, 1, "A", readonly=True),
        types.Array(types.uint32, 1, "A", readonly=True),
        types.uint32[:, ::1],
    )
)
def pack_points(
    xyz_bits: np.ndarray, rgb: np.ndarray, label: np.ndarray, instance: np.ndarray, words: np.ndarray
) -> bool:
    """words (N, 6): x, y, z (the float32 bit patterns ``xyz_bits``), 0x00RRGGBB, label, instance of each point;
    True when every coordinate is finite (the message's is_dense)."""
    finite = True
    for i in range(xyz_bits.shape[0]):
        for k in range(3):
            bits = xyz_bits[i, k]
            words[i, k] = bits
            if bits & _EXPONENT == _EXPONENT:
                finite = False
        words[i, 3] = np.uint32(rgb[i, 2]) | (np.uint32(rgb[i, 1]) << 8) | (np.uint32(rgb[i, 0]) << 16)
        words[i, 4] = label[i]
        words[i, 5] = instance[i]
    return finite
