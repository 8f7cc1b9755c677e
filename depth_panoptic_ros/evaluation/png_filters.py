"""PNG scanline unfiltering (PNG spec, section 9) of 8-bit RGB / RGBA images straight into 24-bit panoptic ids,
as a compiled numba kernel.

Why: reading a 1024 x 2048 panoptic PNG with OpenCV took longer than hotcoco's whole evaluation of a pair
(BENCHMARKS.md, "Panoptic quality evaluation"); libpng's zlib inflate and its byte-wise unfiltering are most of
it. Here a pixel is one 32-bit word and the byte-wise sums, averages and differences of the filters are computed
for all its channels at once (SIMD within a register: carries masked at byte boundaries); only Paeth's
predictor is chosen channel by channel. The word is the id R + 256 G + 256^2 B.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from depth_panoptic_ros.compiled import COMPILE

_RAW = types.Array(types.uint8, 1, "C", readonly=True)
_IDS = types.Array(types.uint32, 2, "C")
_U = np.uint32
_LOW, _HIGH, _HALVES = _U(0x7F7F7F), _U(0x808080), _U(0xFEFEFE)  # per byte: low 7 bits, top bit, all but bit 0
# Offsets are unsigned: numba then drops its negative-index wraparound test, which made the loops ~2x slower.
_ONE, _TWO = np.uint64(1), np.uint64(2)


@numba.njit(inline="always")
def _word(src: np.ndarray, offset: np.uint64) -> np.uint32:
    """The pixel's red, green and blue bytes as one little-endian word (its id)."""
    return _U(src[offset]) | (_U(src[offset + _ONE]) << _U(8)) | (_U(src[offset + _TWO]) << _U(16))


@numba.njit(inline="always")
def _add(a: np.uint32, b: np.uint32) -> np.uint32:
    """Byte-wise (a + b) mod 256: the low seven bits of each byte added, the top bits by exclusive or."""
    return ((a & _LOW) + (b & _LOW)) ^ ((a ^ b) & _HIGH)


@numba.njit(inline="always")
def _paeth(left: np.uint32, up: np.uint32, upper_left: np.uint32) -> np.uint32:
    """Paeth's predictor of each channel (PNG spec 9.4), packed like the pixel."""
    predicted = _U(0)
    for shift in (_U(0), _U(8), _U(16)):
        a = np.int32((left >> shift) & _U(255))
        b = np.int32((up >> shift) & _U(255))
        c = np.int32((upper_left >> shift) & _U(255))
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        best = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        predicted |= _U(best) << shift
    return predicted


@numba.njit(types.int64(_RAW, types.int64, types.int64, types.int64, _IDS), **COMPILE)
def unfilter_ids(raw: np.ndarray, height: int, width: int, bpp: int, ids: np.ndarray) -> int:
    """Undo the filters of ``raw`` (the inflated image data: per row a filter byte and ``width * bpp`` bytes)
    into ``ids`` (height, width); returns -1, or the first row whose filter byte is not 0-4.

    Each channel is filtered on its own (left, up and upper-left neighbours of the same channel), so an alpha
    channel is skipped, not reconstructed, and the previous row's ids are its reconstructed colors.
    """
    stride = width * bpp
    step = np.uint64(bpp)
    zeros = np.zeros(width, np.uint32)
    for y in range(height):
        row = y * (stride + 1)
        kind = raw[row]
        if kind > 4:
            return y
        src = raw[row + 1 : row + 1 + stride]
        out = ids[y]
        prior = ids[y - 1] if y else zeros
        # One loop per filter type (a test inside the loop made it ~5x slower); `left` is the pixel to the left.
        left = _U(0)
        if kind == 0:
            for x in range(width):
                out[x] = _word(src, np.uint64(x) * step)
        elif kind == 1:  # a map's Sub residuals are 0 but at segment edges: the add chain only runs there
            for x in range(width):
                residual = _word(src, np.uint64(x) * step)
                if residual:
                    left = _add(residual, left)
                out[x] = left
        elif kind == 2:
            for x in range(width):
                out[x] = _add(_word(src, np.uint64(x) * step), prior[x])
        elif kind == 3:
            for x in range(width):
                up = prior[x]
                mean = (left & up) + (((left ^ up) & _HALVES) >> _U(1))  # floor((a + b) / 2) per byte
                left = out[x] = _add(_word(src, np.uint64(x) * step), mean)
        else:
            upper_left = _U(0)
            for x in range(width):
                up = prior[x]
                left = out[x] = _add(_word(src, np.uint64(x) * step), _paeth(left, up, upper_left))
                upper_left = up
    return -1
