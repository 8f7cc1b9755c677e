"""The joint histogram of two panoptic maps (pq.py) as one compiled walk over their pixels.

Why: counted with numpy, the histogram took two full-size comparisons, a full-size mask, its nonzero indices
and two gathers (~2-3.5 ms for a 1024 x 2048 pair, as long as decoding one of its PNG files; BENCHMARKS.md,
"Panoptic quality evaluation"). Both maps are piecewise constant, so the walk adds each run of pixels over which
neither id changes to its (ground truth, prediction) cell at once; ids are mapped to rows and columns by lookup
tables. Compiled lazily per id dtype into numba's on-disk cache.
"""

from __future__ import annotations

import numba
import numpy as np

from depth_panoptic_ros.compiled import COMPILE


@numba.njit(inline="always")
def _code(table: np.ndarray, value: int) -> int:
    """table[value], or 0 (an id missing from the segment list) outside the table, negative ids included."""
    return table[value] if 0 <= value < table.size else 0


@numba.njit(**COMPILE)
def count_pairs(gt: np.ndarray, pred: np.ndarray, rows: np.ndarray, columns: np.ndarray, counts: np.ndarray) -> None:
    """counts[rows[g], columns[p]] += the number of pixels with ground-truth id g and predicted id p (1-D maps)."""
    start = 0
    g, p = gt[0], pred[0]
    for i in range(1, gt.size):
        if gt[i] != g or pred[i] != p:
            counts[_code(rows, g), _code(columns, p)] += i - start
            start, g, p = i, gt[i], pred[i]
    counts[_code(rows, g), _code(columns, p)] += gt.size - start
