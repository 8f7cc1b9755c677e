"""The statistics of instance_depth.py as one compiled numba kernel: per-segment counts, float64 sums of the
back-projected valid pixels and the order statistics of their depths, in one walk over the map's runs
that also gathers each segment's valid depths, and one over those depths.

Why: the numpy version gathered the valid pixels of each segment with ~15 full-size array passes (argsort of
the runs, cumsums, repeat, take) and selected the quantiles with one np.partition call per rank from Python
(BENCHMARKS.md, "Geometry and products per frame"). The kernel computes the same values: each sum in float64,
one value after the other in raster order within the segment (what np.add.reduceat of the grouped values
does), each float32 product ray * z as numpy rounds it, and numpy's 'linear' quantile with the position
computed from the same absolute offsets. Order statistics do not depend on how they are selected, so the
in-place quickselect (and, in segments of 2^14 valid depths or more, a histogram of the values' top 16 bits
that narrows each rank to one bin first) gives np.partition's values. Compiled on import with explicit
signatures into numba's on-disk cache; the GIL released.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from depth_panoptic_ros.compiled import COMPILE as _COMPILE
from depth_panoptic_ros.compiled import kernel

_IN_F32_2D = types.Array(types.float32, 2, "A", readonly=True)
_IN_I64 = types.Array(types.int64, 1, "A", readonly=True)
_IN_F64 = types.Array(types.float64, 1, "A", readonly=True)


@numba.njit(types.void(types.float32[:], types.int64, types.int64, types.int64), **_COMPILE)
def _select(values: np.ndarray, lo: int, end: int, rank: int) -> None:
    """Reorders values[lo:end] so that values[rank] is the value sorting would put there, nothing larger before
    it and nothing smaller after it (Hoare partitions around a median of three; no NaN in ``values``). The
    largest and the smallest rank, which the quantiles often ask for right after a larger rank, take one scan."""
    hi = end - 1
    if rank == hi or rank == lo:  # the largest or the smallest: one scan, the value swapped into place
        at = lo + (np.argmax(values[lo:end]) if rank == hi else np.argmin(values[lo:end]))
        values[at], values[rank] = values[rank], values[at]
        return
    while hi > lo:
        mid = (lo + hi) >> 1
        a, b, c = values[lo], values[mid], values[hi]
        pivot = max(min(a, b), min(max(a, b), c))
        i, j = lo, hi
        while i <= j:
            while values[i] < pivot:
                i += 1
            while values[j] > pivot:
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                i += 1
                j -= 1
        if rank <= j:
            hi = j
        elif rank >= i:
            lo = i
        else:
            return


@numba.njit(types.void(types.float32[:], types.int64, types.int64, types.int64[:], types.float32[:]), **_COMPILE)
def _select_ranks(values: np.ndarray, lo: int, end: int, ranks: np.ndarray, found: np.ndarray) -> None:
    """found[i]: the value sorting values[lo:end] would put at ranks[i] (absolute). Highest rank first (an
    insertion sort of the few ranks), each selected within the part below the previous one."""
    order = np.empty(len(ranks), np.int64)
    for i in range(len(ranks)):
        j = i
        while j > 0 and ranks[order[j - 1]] < ranks[i]:
            order[j] = order[j - 1]
            j -= 1
        order[j] = i
    for j in order:
        rank = ranks[j]
        if rank < end:
            _select(values, lo, end, rank)
            end = rank
        found[j] = values[rank]


# Segments with at least this many valid depths select through a histogram of the top 16 bits of the values: on
# real KITTI maps (segments of 20-180 k valid depths) 2^14 took 0.1-0.5 ms less per frame than 2^16, and 2^12
# or 2^13 no less (the histogram's fixed cost then outweighs the quickselects it replaces).
_HISTOGRAM_MIN = 1 << 14
_COUNTERS = 4  # tables the histogram counts into in turn (int32: a segment has < 2^31 pixels)


@numba.njit(
    types.void(types.float32[::1], types.int64, types.int64, types.int64[:], types.float32[:], types.int64[:]),
    **_COMPILE,
)
def _select_by_histogram(
    values: np.ndarray, lo: int, end: int, ranks: np.ndarray, found: np.ndarray, slot: np.ndarray
) -> None:
    """found[i]: the value sorting values[lo:end] would put at ranks[i] (absolute), for a large segment.

    Positive floats order as their bit patterns do, so one pass counts the values per top 16 bits, the counts
    say which bin and which rank within it each wanted rank is, and a second pass copies only the values of those
    few bins out for a quickselect each: two streaming passes instead of several partitions of the whole
    segment. ``slot``: 2^16 int64 scratch, all -1 on entry and on return. Values are finite and > 0."""
    bits = values.view(np.uint32)
    # Counted into _COUNTERS tables in turn: neighboring depths mostly fall into one bin, and a single table would
    # make every increment wait for the one before it (store to load): the bench scene's two large segments at
    # 1024x2048 select in ~2.0 instead of ~2.3 ms.
    counts = np.zeros((_COUNTERS, 1 << 16), np.int32)
    stop = end - (end - lo) % _COUNTERS
    for i in range(lo, stop, _COUNTERS):
        for t in range(_COUNTERS):
            counts[t, bits[i + t] >> 16] += 1
    for i in range(stop, end):
        counts[0, bits[i] >> 16] += 1
    cumulative = counts[0].astype(np.int64)
    for t in range(1, _COUNTERS):
        cumulative += counts[t]
    for b in range(1, 1 << 16):
        cumulative[b] += cumulative[b - 1]
    nr = len(ranks)
    bins, within, first, filled = np.empty((4, nr), np.int64)
    size = 0
    for i in range(nr):
        b = np.searchsorted(cumulative, ranks[i] - lo, side="right")
        before = cumulative[b - 1] if b > 0 else 0
        bins[i], within[i] = b, ranks[i] - lo - before
        if slot[b] < 0:
            slot[b] = i
            first[i] = filled[i] = size
            size += cumulative[b] - before
    copied = np.empty(size, np.float32)
    for i in range(lo, end):
        target = slot[bits[i] >> 16]
        if target >= 0:
            copied[filled[target]] = values[i]
            filled[target] += 1
    for i in range(nr):
        owner = slot[bins[i]]
        _select(copied, first[owner], filled[owner], first[owner] + within[i])
        found[i] = copied[first[owner] + within[i]]
    for i in range(nr):
        slot[bins[i]] = -1


@kernel(
    types.void(
        _IN_F32_2D,
        _IN_F32_2D,
        _IN_F32_2D,
        _IN_I64,
        _IN_I64,
        _IN_I64,
        _IN_I64,
        types.int64,
        _IN_F64,
        types.int64[:],
        types.float64[:, :],
        types.float32[::1],
        types.float32[:, :],
    )
)
def segment_statistics(
    depth: np.ndarray,
    ray_x: np.ndarray,
    ray_y: np.ndarray,
    start: np.ndarray,
    length: np.ndarray,
    segment: np.ndarray,
    pixel_count: np.ndarray,
    skip: int,
    quantiles: np.ndarray,
    count: np.ndarray,
    sums: np.ndarray,
    grouped: np.ndarray,
    ranked: np.ndarray,
) -> None:
    """Per segment k of the runs (start, length, segment; see SegmentRuns) over its pixels with finite depth > 0:
    count[k], sums[k] (x, y, z in float64; x = ray_x * z, y = ray_y[row, 0] * z in float32; ray_x (H, W) or one
    row for all), and
    ranked[i, k] numpy's 'linear' quantile ``quantiles[i]`` of the depths (NaN without such pixels). Segment
    ``skip`` (void; -1 for none) counts nothing. ``pixel_count``: the pixels of each segment (SegmentRuns.extents);
    ``grouped``: float32 scratch of at least depth.size values."""
    width = depth.shape[1]
    count[:] = 0
    sums[:] = 0.0
    first = np.empty(len(count), np.int64)  # segment k's valid depths go to grouped[first[k]:], in raster order
    total = 0
    for k in range(len(count)):
        first[k] = total
        total += pixel_count[k]
    for r in range(len(start)):  # one walk: the valid depths to their segment's part of ``grouped``, the sums
        k = segment[r]
        if k == skip:
            continue
        row, col = start[r] // width, start[r] % width
        ray, rays_x = ray_y[row, 0], ray_x[min(row, ray_x.shape[0] - 1)]
        sx, sy, sz = sums[k, 0], sums[k, 1], sums[k, 2]
        m = first[k] + count[k]
        for c in range(col, col + length[r]):
            z = depth[row, c]
            grouped[m] = z  # kept only when valid: the next write goes to the same place otherwise
            if z > 0 and z < np.inf:
                m += 1
                sx += rays_x[c] * z
                sy += ray * z
                sz += z
        count[k] = m - first[k]
        sums[k, 0], sums[k, 1], sums[k, 2] = sx, sy, sz
    nq = len(quantiles)
    position = np.empty(nq)
    below = np.empty(nq, np.int64)
    ranks = np.empty(2 * nq, np.int64)
    found = np.empty(2 * nq, np.float32)
    slot = np.full(1 << 16, -1, np.int64)
    offset = 0  # the segment's offset among all segments' valid depths laid out one segment after the other
    for k in range(len(count)):
        n = count[k]
        if n == 0:
            ranked[:, k] = np.nan
            continue
        lo, last = first[k], first[k] + n - 1
        for i in range(nq):  # numpy's position: offset + q (count - 1), in float64 as the numpy version had it
            position[i] = offset + quantiles[i] * (n - 1)
            below[i] = np.int64(np.floor(position[i]))
            ranks[i] = lo + below[i] - offset
            ranks[nq + i] = min(ranks[i] + 1, last)
        offset += n
        if n >= _HISTOGRAM_MIN:
            _select_by_histogram(grouped, lo, last + 1, ranks, found, slot)
        else:
            _select_ranks(grouped, lo, last + 1, ranks, found)
        for i in range(nq):
            low = np.float64(found[i])
            ranked[i, k] = low + (position[i] - below[i]) * (np.float64(found[nq + i]) - low)
