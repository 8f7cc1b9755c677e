"""The two passes of the classical completion (classical.py) as compiled numba kernels: one walk along each row
and one along each column of the transposed box, anchor to anchor, instead of ~85 OpenCV / numpy calls; and its
5 x 5 median with the choice of the pixels that take it in one pass (vectorized across the row).

Why: the OpenCV passes (classical_opencv.py) make ~25 elementwise passes over the box and ~60 numpy calls on
the gap segments, which made the completion slower than IP-Basic (BENCHMARKS.md, "Completion time"). The
kernels compute the same float32 arithmetic in the same order, so their output is bit-identical (tested on
every real frame and on random scenes): the same-surface tolerance as OpenCV's vector code computes it on a CPU
with FMA (addWeighted: fma(a, w, fma(b, w, abs)), then scaleAdd: fma(gap, slope, tolerance), in float32),
cv2.blendLinear's (a w1 + b w2) / (w1 + w2 + 1e-5), 1 / x as cv2.divide, cv2.cvtColor's gray. Two places where
OpenCV itself rounds otherwise: addWeighted's scalar tail (the last < 16 values of a call: in practice
segments with one anchor missing, where the tolerance decides nothing) and CPUs without FMA. A missing anchor
is never one surface with a real one here; the OpenCV path's -1e20 sentinel ensures that only for
same_surface_abs below ~1e19. Single-threaded and without fastmath (no reassociation, no contraction into FMA
where the OpenCV path has none). Compiled on import with explicit signatures into numba's on-disk cache
(cache=True): later processes load it (~0.3 s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numba
import numpy as np
from numba import types

from depth_panoptic_ros.compiled import COMPILE as _COMPILE
from depth_panoptic_ros.compiled import fma32 as _fma
from depth_panoptic_ros.compiled import kernel
from depth_panoptic_ros.depth import classical_opencv
from depth_panoptic_ros.scratch import Scratch

if TYPE_CHECKING:
    from depth_panoptic_ros.depth.classical import CompletionConfig

# The kernels' array types: inputs may be read-only (e.g. images decoded from a message buffer), any layout.
_IN_F32, _IN_U8 = (types.Array(dtype, 2, "A", readonly=True) for dtype in (types.float32, types.uint8))
_IN_RGB = types.Array(types.uint8, 3, "A", readonly=True)
_IN_F32_C, _IN_U8_C = (types.Array(dtype, 2, "C", readonly=True) for dtype in (types.float32, types.uint8))
_OUT_F32 = types.float32[:, :]
_SURFACE = (types.float32,) * 3  # weight, tolerance and slope of the same-surface test
_NO_IMAGE = np.zeros((0, 0, 3), np.uint8)
_SCRATCH = Scratch()
_EPS = np.float32(1e-5)  # cv2.blendLinear's guard in the denominator
_ONE = np.float32(1)


@numba.njit(**_COMPILE)
def _apart(a: float, b: float, gap: float, weight: float, tolerance: float, slope: float) -> bool:
    """Two surfaces: |a - b| > weight (a + b) + tolerance + slope gap, in OpenCV's order (see _apart in
    classical_opencv.py)."""
    return abs(a - b) > _fma(gap, slope, _fma(a, weight, _fma(b, weight, tolerance)))


@numba.njit(**_COMPILE)
def _gray_step(rgb: np.ndarray, row: int, col: int) -> int:
    """cv2.cvtColor(RGB2GRAY) of the absolute RGB difference of pixel ``col`` and the one before it, the color
    step at ``col``: in OpenCV's 15-bit fixed point, rounded (checked against cv2 on all 2^24 colors)."""
    r = abs(np.int32(rgb[row, col, 0]) - np.int32(rgb[row, col - 1, 0]))
    g = abs(np.int32(rgb[row, col, 1]) - np.int32(rgb[row, col - 1, 1]))
    b = abs(np.int32(rgb[row, col, 2]) - np.int32(rgb[row, col - 1, 2]))
    return (r * 9798 + g * 19235 + b * 3735 + (1 << 14)) >> 15


@numba.njit(**_COMPILE)
def _color_split(rgb: np.ndarray, row: int, start: int, gap: int, split: int) -> int:
    """``split`` moved away from the strongest color step between the anchors at ``start`` and ``start + gap``:
    pixel k joins "before" when the step is first strongest after k, "after" when last strongest up to k."""
    first, last, strongest = 0, 0, -1
    for k in range(1, gap + 1):
        step = _gray_step(rgb, row, start + k)
        if step > strongest:
            first, strongest = k, step
        if step == strongest:
            last = k
    return max(first, min(last, split))


@numba.njit(**_COMPILE)
def _fill_segment(
    line: np.ndarray,
    start: int,
    gap: int,
    before: float,
    after: float,
    split: int,
    same: bool,
    reach: int,
) -> None:
    """Pixels start + 1 .. start + gap - 1 of ``line`` between anchors ``before`` and ``after`` (0 = none): the
    value before for the first ones, a linear blend where both anchors are in reach on one surface, the value
    after for the last; each side only within reach. As _fill_along_rows of classical_opencv.py computes them."""
    low, high = max(gap - reach, 1), min(gap - 1, reach)
    if before == 0 or after == 0:
        c1 = c2 = 1 if before == 0 else gap
    elif same:
        c1, c2 = low, high + 1
    else:
        c1 = c2 = min(max(split, low), high + 1)
    slope = (after - before) / np.float32(gap)
    for k in range(1, 1 + min(max(c1 - 1, 0), reach)):
        line[start + k] = before
    first = before + np.float32(c1) * slope
    for j in range(max(c2 - c1, 0)):
        line[start + c1 + j] = first + slope * np.float32(j)
    for k in range(max(gap - reach, c2), gap):
        line[start + k] = after


@kernel(types.void(_IN_F32, _IN_U8, _IN_RGB, types.int64, *_SURFACE, _OUT_F32))
def fill_along_rows(
    sparse: np.ndarray,
    measured: np.ndarray,
    rgb: np.ndarray,
    reach: int,
    weight: float,
    tolerance: float,
    slope: float,
    inverse: np.ndarray,
) -> None:
    """``inverse``: 1 / depth of the measured pixels (``measured`` != 0) and the gaps between them along rows
    filled (0 elsewhere). ``rgb``: (H, W, 3) uint8 or an empty (0, 0, 3) array when there is no image.
    Same segments as the OpenCV path: between consecutive points of a row, past the last one over the row's end
    and before the first one, each only as far as reach goes."""
    height, width = sparse.shape
    use_rgb = rgb.shape[0] > 0
    for row in range(height):
        line = inverse[row]
        line[:] = 0
        previous, value_before = -1, np.float32(0)
        for col in range(width):
            if measured[row, col] == 0:
                continue
            value = _ONE / sparse[row, col]
            line[col] = value
            if reach == 0:
                continue
            if previous < 0:  # the row's start: up to reach px before the first point
                n_first = min(reach, col)
                _fill_segment(line, col - n_first - 1, n_first + 1, np.float32(0), value, 0, False, reach)
            else:
                gap = col - previous
                same = not _apart(value_before, value, np.float32(gap), weight, tolerance, slope)
                split = gap // 2 + 1
                if use_rgb and not same and max(gap - reach, 1) <= min(gap - 1, reach):
                    split = _color_split(rgb, row, previous, gap, split)
                _fill_segment(line, previous, gap, value_before, value, split, same, reach)
            previous, value_before = col, value
        if previous >= 0 and reach > 0:  # past the row's last point
            gap = min(reach, width - 1 - previous) + 1
            _fill_segment(line, previous, gap, value_before, np.float32(0), 0, False, reach)


@kernel(types.void(_IN_F32, types.int64, types.int64, *_SURFACE, _OUT_F32))
def fill_along_columns(
    inverse_t: np.ndarray,
    reach: int,
    extend: int,
    weight: float,
    tolerance: float,
    slope: float,
    dense_t: np.ndarray,
) -> None:
    """``dense_t``: depth (0 = unknown) from ``inverse_t`` (the row pass's, transposed: row k is column k) with the
    gaps along columns filled. Anchors (inverse > 0) come out as 1 / inverse; fill_passes puts the measured
    depths back.

    One walk along each column, anchor to anchor: a pixel between two anchors within reach takes the blend of
    their inverse depths weighted by distance (cv2.blendLinear's arithmetic) when they are one surface (tested
    once per gap), else the nearer one's (above on a tie); with one anchor in reach its value; above a column's
    top anchor the top value up to extend px, 0 beyond; below the bottom one its value up to reach px."""
    columns, height = inverse_t.shape
    scale = np.float32(1024)  # the OpenCV path's weights in 1/1024 px
    for col in range(columns):
        line, out = inverse_t[col], dense_t[col]
        above = -1
        for row in range(height):
            value = line[row]
            if value <= 0:
                continue
            depth = _ONE / value
            if above < 0:  # the column's top anchor: carried up extend px
                for r in range(row):
                    out[r] = depth if row - r <= extend else np.float32(0)
            else:
                x_above = line[above]
                depth_above = out[above]  # 1 / x_above, written when that anchor was reached
                same = not _apart(x_above, value, np.float32(row - above), weight, tolerance, slope)
                for r in range(above + 1, row):
                    has_above, has_below = r - above <= reach, row - r <= reach
                    if has_above and has_below:
                        w_above, w_below = np.float32(row - r) * scale, np.float32(r - above) * scale
                        if same:
                            out[r] = _ONE / ((x_above * w_above + value * w_below) / (w_above + w_below + _EPS))
                            continue
                        has_above = w_below <= w_above
                    elif not (has_above or has_below):
                        out[r] = 0
                        continue
                    out[r] = depth_above if has_above else depth
            out[row] = depth
            above = row
        bottom = out[above] if above >= 0 else np.float32(0)  # below the bottom anchor, the whole column without one
        for r in range(above + 1, height):
            out[r] = bottom if r - above <= reach else np.float32(0)


# The pixels far from every measurement take the median of the 5 x 5 completion around them (classical.py),
# computed for two vertically neighboring windows at once: they share four of their five rows. The 20 shared
# values are reduced to their ranks 7-12 (no other can be either window's median: each window adds 5 values),
# then each window's own row, sorted, is merged in to the median of those 11 (rank 5). The shared part: each row
# sorted (9 exchanges), Batcher's odd-even merges of the rows padded to 8 (5 + 5, then 10 + 10), pruned to the
# comparators that reach ranks 7-12: 160 min / max; with each own row's 18 + 10, ~108 per pixel against ~198 for
# N. Devillard's 99-exchange network for one window (used here before). test_classical_completion checks the
# network against every 0/1 input (the 0-1 principle) and the kernel against cv2.medianBlur. Any exact selection
# gives the same value, so the output is OpenCV's bit for bit (both pick one of the 25 values; the completion has
# no NaN and no -0.0, where min / max could pick otherwise).


@numba.njit(inline="always", **_COMPILE)
def _sort2(a: float, b: float) -> tuple[float, float]:
    return (b, a) if b < a else (a, b)


@numba.njit(inline="always", **_COMPILE)
def _lo(a: float, b: float) -> float:
    """_sort2's first value alone (where the network needs no other)."""
    return b if b < a else a


@numba.njit(inline="always", **_COMPILE)
def _hi(a: float, b: float) -> float:
    """_sort2's second value alone."""
    return a if b < a else b


@numba.njit(inline="always", **_COMPILE)
def _shared_ranks(
    r1: np.ndarray, r2: np.ndarray, r3: np.ndarray, r4: np.ndarray, x: int
) -> tuple[float, float, float, float, float, float]:
    """The ranks 7-12, in order, of the 20 values of rows r1..r4, columns x..x + 4 (generated, see above)."""
    p0, p1, p2, p3, p4 = r1[x], r1[x + 1], r1[x + 2], r1[x + 3], r1[x + 4]
    p5, p6, p7, p8, p9 = r2[x], r2[x + 1], r2[x + 2], r2[x + 3], r2[x + 4]
    p10, p11, p12, p13, p14 = r3[x], r3[x + 1], r3[x + 2], r3[x + 3], r3[x + 4]
    p15, p16, p17, p18, p19 = r4[x], r4[x + 1], r4[x + 2], r4[x + 3], r4[x + 4]
    p0, p1 = _sort2(p0, p1)
    p3, p4 = _sort2(p3, p4)
    p2, p4 = _sort2(p2, p4)
    p2, p3 = _sort2(p2, p3)
    p0, p3 = _sort2(p0, p3)
    p0, p2 = _sort2(p0, p2)
    p1, p4 = _sort2(p1, p4)
    p1, p3 = _sort2(p1, p3)
    p1, p2 = _sort2(p1, p2)
    p5, p6 = _sort2(p5, p6)
    p8, p9 = _sort2(p8, p9)
    p7, p9 = _sort2(p7, p9)
    p7, p8 = _sort2(p7, p8)
    p5, p8 = _sort2(p5, p8)
    p5, p7 = _sort2(p5, p7)
    p6, p9 = _sort2(p6, p9)
    p6, p8 = _sort2(p6, p8)
    p6, p7 = _sort2(p6, p7)
    p10, p11 = _sort2(p10, p11)
    p13, p14 = _sort2(p13, p14)
    p12, p14 = _sort2(p12, p14)
    p12, p13 = _sort2(p12, p13)
    p10, p13 = _sort2(p10, p13)
    p10, p12 = _sort2(p10, p12)
    p11, p14 = _sort2(p11, p14)
    p11, p13 = _sort2(p11, p13)
    p11, p12 = _sort2(p11, p12)
    p15, p16 = _sort2(p15, p16)
    p18, p19 = _sort2(p18, p19)
    p17, p19 = _sort2(p17, p19)
    p17, p18 = _sort2(p17, p18)
    p15, p18 = _sort2(p15, p18)
    p15, p17 = _sort2(p15, p17)
    p16, p19 = _sort2(p16, p19)
    p16, p18 = _sort2(p16, p18)
    p16, p17 = _sort2(p16, p17)
    p0, p5 = _sort2(p0, p5)
    p4, p9 = _sort2(p4, p9)
    p4, p5 = _sort2(p4, p5)
    p2, p7 = _sort2(p2, p7)
    p2, p4 = _sort2(p2, p4)
    p7, p5 = _sort2(p7, p5)
    p1, p6 = _sort2(p1, p6)
    p3, p8 = _sort2(p3, p8)
    p3, p6 = _sort2(p3, p6)
    p1, p2 = _sort2(p1, p2)
    p3, p4 = _sort2(p3, p4)
    p6, p7 = _sort2(p6, p7)
    p8, p5 = _sort2(p8, p5)
    p10, p15 = _sort2(p10, p15)
    p14, p19 = _sort2(p14, p19)
    p14, p15 = _sort2(p14, p15)
    p12, p17 = _sort2(p12, p17)
    p12, p14 = _sort2(p12, p14)
    p17, p15 = _sort2(p17, p15)
    p11, p16 = _sort2(p11, p16)
    p13, p18 = _sort2(p13, p18)
    p13, p16 = _sort2(p13, p16)
    p11, p12 = _sort2(p11, p12)
    p13, p14 = _sort2(p13, p14)
    p16, p17 = _sort2(p16, p17)
    p18, p15 = _sort2(p18, p15)
    p10 = _hi(p0, p10)
    p5 = _lo(p5, p15)
    p5, p10 = _sort2(p5, p10)
    p4, p14 = _sort2(p4, p14)
    p5 = _hi(p4, p5)
    p14 = _lo(p14, p10)
    p12 = _hi(p2, p12)
    p7 = _lo(p7, p17)
    p7, p12 = _sort2(p7, p12)
    p5 = _hi(p7, p5)
    p12, p14 = _sort2(p12, p14)
    p11 = _hi(p1, p11)
    p9 = _lo(p9, p19)
    p9, p11 = _sort2(p9, p11)
    p6, p16 = _sort2(p6, p16)
    p9 = _hi(p6, p9)
    p16 = _lo(p16, p11)
    p13 = _hi(p3, p13)
    p8 = _lo(p8, p18)
    p8, p13 = _sort2(p8, p13)
    p8, p9 = _sort2(p8, p9)
    p13 = _lo(p13, p16)
    p8, p5 = _sort2(p8, p5)
    p9, p12 = _sort2(p9, p12)
    p13, p14 = _sort2(p13, p14)
    return p8, p5, p9, p12, p13, p14


@numba.njit(inline="always", **_COMPILE)
def _median_with_row(shared: tuple[float, float, float, float, float, float], row: np.ndarray, x: int) -> float:
    """The median of the window of the 20 shared values (their ranks 7-12 ``shared``) and ``row``'s x..x + 4: the
    rank 5 of the 11, as the largest of min(shared[i], own[5 - i]) (own sorted, own[5] = +infinity)."""
    q0, q1, q2, q3, q4 = row[x], row[x + 1], row[x + 2], row[x + 3], row[x + 4]
    q0, q1 = _sort2(q0, q1)
    q3, q4 = _sort2(q3, q4)
    q2, q4 = _sort2(q2, q4)
    q2, q3 = _sort2(q2, q3)
    q0, q3 = _sort2(q0, q3)
    q0, q2 = _sort2(q0, q2)
    q1, q4 = _sort2(q1, q4)
    q1, q3 = _sort2(q1, q3)
    q1, q2 = _sort2(q1, q2)
    s0, s1, s2, s3, s4, s5 = shared
    low = _hi(_hi(s0, _lo(s1, q4)), _lo(s2, q3))
    return _hi(low, _hi(_hi(_lo(s3, q2), _lo(s4, q1)), _lo(s5, q0)))


# The median is computed on spans of whole chunks of this many pixels of a pair of rows, and not on chunks where no
# pixel can take it (next to a measurement, or unknown): a quarter of the box at 1024x2048, 40 % at 375x1242 on
# the bench scene. Finding them costs little: in most chunks the first pixels decide.
_MEDIAN_CHUNK = 16


@numba.njit(inline="always", **_COMPILE)
def _wants_median(far: np.ndarray, own: np.ndarray, x: int) -> bool:
    """Whether pixel x of a row (``own``: that row of the padded box) can take the median."""
    return (far[x] == 0) & (own[x + 2] > 0)


@numba.njit(inline="always", **_COMPILE)
def _take_medians(
    out0: np.ndarray,
    out1: np.ndarray,
    far0: np.ndarray,
    far1: np.ndarray,
    rows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    count: int,
) -> None:
    """take_median_where_far on the first ``count`` pixels of two rows (the arrays cut to start at the span);
    ``rows``: the six padded rows their windows cover."""
    r0, r1, r2, r3, r4, r5 = rows
    for x in range(count):  # one window pair per lane: LLVM vectorizes the network across x
        shared = _shared_ranks(r1, r2, r3, r4, x)
        median0, median1 = _median_with_row(shared, r0, x), _median_with_row(shared, r5, x)
        out0[x] = median0 if _wants_median(far0, r2, x) & (median0 > 0) else r2[x + 2]
        out1[x] = median1 if _wants_median(far1, r3, x) & (median1 > 0) else r3[x + 2]


@numba.njit(types.void(types.float32[:, ::1], types.int64, types.int64, _IN_U8_C, _IN_F32_C), **_COMPILE)
def take_median_where_far(dense: np.ndarray, top: int, left: int, near: np.ndarray, padded: np.ndarray) -> None:
    """In place, in the box of ``near``'s size at (top, left) of ``dense``: the pixels where ``near`` is 0 and both
    their value and the median of the 5 x 5 window around them are > 0 take that median. ``padded``: that box of
    ``dense`` with a 2-px border replicated (what cv2.medianBlur reads beyond its edges), read for every window,
    so the writes change no later window and pixels that keep their value need none. All C-contiguous: with
    strided rows LLVM does not vectorize (8x slower). Two rows at a time; a last odd row pairs with itself, the
    second result thrown away."""
    height, width = near.shape
    spare = np.empty(width, np.float32)  # the thrown-away row
    for y in range(0, height, 2):
        second = min(y + 1, height - 1)
        rows = (padded[y], padded[y + 1], padded[y + 2], padded[y + 3], padded[y + 4], padded[second + 4])
        out0, out1 = dense[top + y, left:], dense[top + second, left:] if second > y else spare
        far0, far1 = near[y], near[second]
        begin = -1  # the first chunk of the current span of wanted chunks
        for start in range(0, width + _MEDIAN_CHUNK, _MEDIAN_CHUNK):  # the last chunk is empty: it ends the span
            wanted = False
            for x in range(start, min(start + _MEDIAN_CHUNK, width)):
                if _wants_median(far0, rows[2], x) | _wants_median(far1, rows[3], x):
                    wanted = True
                    break
            if wanted and begin < 0:
                begin = start
            elif not wanted and begin >= 0:
                span, count = slice(begin, None), min(start, width) - begin
                cut = (rows[0][span], rows[1][span], rows[2][span], rows[3][span], rows[4][span], rows[5][span])
                _take_medians(out0[span], out1[span], far0[span], far1[span], cut, count)
                begin = -1


_LOWEST, _HIGHEST = (np.float32(bound) for bound in classical_opencv.POSITIVE_FINITE)


@kernel(types.UniTuple(types.int64, 4)(_IN_F32, types.uint8[:, :]))
def _measure(sparse: np.ndarray, measured: np.ndarray) -> tuple[int, int, int, int]:
    """``measured``: 1 where ``sparse`` is in [_LOWEST, _HIGHEST] (NaN is not), else 0; returns their bounding box
    (left, top, width, height) as cv2.boundingRect gives it, (0, 0, 0, 0) without any."""
    height, width = sparse.shape
    columns = np.zeros(width, np.uint8)  # a measurement anywhere in the column
    top = bottom = -1
    for r in range(height):
        row, out = sparse[r], measured[r]
        found = np.uint8(0)
        for c in range(width):
            value = row[c]
            hit = np.uint8((value >= _LOWEST) & (value <= _HIGHEST))
            out[c] = hit
            columns[c] |= hit
            found |= hit
        if found:
            top = r if top < 0 else top
            bottom = r
    if top < 0:
        return 0, 0, 0, 0
    hits = np.flatnonzero(columns)
    return hits[0], top, hits[-1] - hits[0] + 1, bottom - top + 1


def find_measurements(sparse: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """classical_opencv.find_measurements in one compiled pass (no separate range test, threshold and box)."""
    measured = _SCRATCH.array("measured", sparse.shape, np.uint8)
    return measured, _measure(sparse, measured)


def fill_passes(
    sparse: np.ndarray, measured: np.ndarray, rgb: np.ndarray | None, config: CompletionConfig, dense: np.ndarray
) -> None:
    """``dense``: the depth of both passes over ``sparse`` (its pixels where ``measured`` is 1, bit-exactly), 0
    where unknown; all arrays cut to the box the measurements reach, ``rgb`` (H, W, 3) uint8 or None."""
    surface = _same_surface_factors(config)
    inverse = _SCRATCH.array("inverse", sparse.shape, np.float32)
    fill_along_rows(sparse, measured, _NO_IMAGE if rgb is None else rgb, config.along_gap_px, *surface, inverse)
    # The column pass walks the transposed map: along a column of the row-major map every pixel is another
    # cache line (~3x slower at 1024x2048); two transpositions cost less.
    inverse_t = cv2.transpose(inverse, dst=_SCRATCH.array("inverse_t", sparse.shape[::-1], np.float32))
    dense_t = _SCRATCH.array("dense_t", sparse.shape[::-1], np.float32)
    fill_along_columns(inverse_t, config.across_gap_px, config.extend_px, *surface, dense_t)
    cv2.transpose(dense_t, dst=dense)
    cv2.copyTo(sparse, measured, dense)  # the measured pixels bit-exactly (1 / (1 / d) need not be d)


def smooth_far_from_measurements(
    dense: np.ndarray, box: tuple[slice, slice], measured: np.ndarray, config: CompletionConfig
) -> None:
    """classical_opencv.smooth_far_from_measurements, the 5 x 5 median and the choice of pixels in one compiled
    pass (the 3 x 3 median stays OpenCV's). ``dense``: C-contiguous, the whole map."""
    if config.median_px != 5:
        classical_opencv.smooth_far_from_measurements(dense, box, measured, config)
        return
    near = classical_opencv.near_measurements(measured, config)
    inside = dense[box]
    padded = _SCRATCH.array("padded", (inside.shape[0] + 4, inside.shape[1] + 4), np.float32)
    cv2.copyMakeBorder(inside, 2, 2, 2, 2, cv2.BORDER_REPLICATE, dst=padded)
    take_median_where_far(dense, box[0].start, box[1].start, near, padded)


def _same_surface_factors(config: CompletionConfig) -> tuple[np.float32, np.float32, np.float32]:
    """(weight, tolerance, slope) of _apart, rounded to float32 as cv2.addWeighted / cv2.scaleAdd round the
    OpenCV path's factors (_apart of classical_opencv.py: the max written as a sum)."""
    scale = 1 / (1 - config.same_surface_rel / 2)
    return (
        np.float32(config.same_surface_rel / 2 * scale),
        np.float32(config.same_surface_abs * scale),
        np.float32(config.same_surface_slope * scale),
    )
