"""The run starts and the outline pixels of segments.py (SegmentRuns) as compiled numba kernels.

Why: the run starts took a full-size comparison image and np.flatnonzero (~3 ms at 1024x2048); found with numpy
from the runs, the outlines took ~2-3 ms CPU per frame at KITTI and Cityscapes sizes
(union1d, two searchsorted and a repeat over all run starts; BENCHMARKS.md, "Geometry and products per frame").
The kernel walks the runs of each row and the row below together: per piece between consecutive run starts of
both rows it writes the whole piece when the ids above and below differ, else only a run's last pixel when
the next run of its row starts right after it. Pixels come out ascending, as from np.union1d.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from depth_panoptic_ros.compiled import kernel

_IN_I64 = types.Array(types.int64, 1, "A", readonly=True)
# The id maps the package makes or reads (network output, PNG decoding, bags); others are converted first.
ID_TYPES = (np.int32, np.int64, np.uint16, np.uint32)


@kernel(*(types.int64(types.Array(numba.from_dtype(t), 2, "A", readonly=True), types.int64[:]) for t in ID_TYPES))
def run_starts(ids: np.ndarray, out: np.ndarray) -> int:
    """Number of runs of equal ids along the rows (a run never crosses a row end); their first pixels' flat
    indices, ascending, in out[:n] (out: at least ids.size long)."""
    height, width = ids.shape
    if width == 0:
        return 0
    n = 0
    for row in range(height):
        out[n] = row * width
        n += 1
        for col in range(1, width):
            if ids[row, col] != ids[row, col - 1]:
                out[n] = row * width + col
                n += 1
    return n


@kernel(types.int64(_IN_I64, _IN_I64, _IN_I64, types.int64, types.int64, types.int64[:]))
def boundary_pixels(
    start: np.ndarray, length: np.ndarray, segment: np.ndarray, height: int, width: int, out: np.ndarray
) -> int:
    """Number of pixels whose right or lower neighbor has another id; the first len(out) of them, ascending, in
    ``out`` (an empty ``out`` counts them). start, length, segment: SegmentRuns (runs never cross a row end)."""
    n = 0
    i = 0  # the run of the current row at the current column
    for row in range(height):
        j = i  # the run of the row below at the current column
        while j < len(start) and start[j] < (row + 1) * width:
            j += 1
        below = row + 1 < height
        col = 0
        while col < width:
            end = start[i] + length[i] - row * width  # column after run i
            piece_end = end
            if below:
                piece_end = min(end, start[j] + length[j] - (row + 1) * width)
            if below and segment[i] != segment[j]:
                for c in range(col, piece_end):
                    if n < len(out):
                        out[n] = row * width + c
                    n += 1
            elif piece_end == end and end < width:  # run i's last pixel; the next run of the row differs
                if n < len(out):
                    out[n] = row * width + end - 1
                n += 1
            col = piece_end
            if col == end:
                i += 1
            if below and col == start[j] + length[j] - (row + 1) * width:
                j += 1
    return n


@kernel(types.void(_IN_I64, _IN_I64, _IN_I64, types.int64, types.int64[:], types.int64[:, :]))
def run_extents(
    start: np.ndarray, length: np.ndarray, segment: np.ndarray, width: int, count: np.ndarray, box: np.ndarray
) -> None:
    """count[k], the pixels, and box[k], x0, y0, x1, y1 (half-open), of each segment k of the runs (start,
    length, segment: SegmentRuns; every segment has a run). One walk in raster order: a segment's first run
    gives y0, its last y1."""
    count[:] = 0
    box[:, 0] = width
    box[:, 2] = 0
    box[:, 1] = -1
    for r in range(len(start)):
        k, row, col = segment[r], start[r] // width, start[r] % width
        count[k] += length[r]
        box[k, 0] = min(box[k, 0], col)
        box[k, 2] = max(box[k, 2], col + length[r])
        if box[k, 1] < 0:
            box[k, 1] = row
        box[k, 3] = row + 1
