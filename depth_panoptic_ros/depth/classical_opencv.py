"""The steps of the classical completion (classical.py: finding the measurements, the two passes, the median) with
OpenCV and numpy calls: the path used when numba is not installed (classical_compiled.py holds the same steps
compiled, bit-identical and faster).

The pass along the rows works on the gaps between consecutive measurements of a row, a few percent of the
pixels; the pass along the columns on strips of columns, each cut to the rows its own measurements reach, with
a fixed number of OpenCV calls; temporaries live in per-thread scratch memory (no page faults per frame,
scratch.py).
"""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING

import cv2
import numpy as np

from depth_panoptic_ros.scratch import Scratch

if TYPE_CHECKING:
    from depth_panoptic_ros.depth.classical import CompletionConfig

# cv2.blendLinear divides by (w1 + w2 + 1e-5): weights in 1/1024 px keep that guard below float32 rounding.
_WEIGHT_SCALE = 1024.0
# The pass along the columns runs on strips of about this many pixels (a KITTI box: 2 strips). Each strip costs
# ~0.25 ms of Python calls; on the 1 MiB-L2 machines of BENCHMARKS.md smaller strips gained less than that.
_STRIP_PIXELS = 1 << 18
_INT16 = np.iinfo(np.int16)  # row indices are int16 in the pass along the columns: the fastest morphology
_MAX_STRIP_COLS = _INT16.max - 1  # cv2.remap takes images narrower than SHRT_MAX
# What counts as measured: NaN fails both bounds, and below the smallest normal float32 1 / depth overflows.
POSITIVE_FINITE = (float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max))
_NO_ANCHOR = -1e20  # what the pass along the columns reads for a missing anchor: never one surface with a real one
_CONSTANT_IMAGES: list[tuple[np.ndarray, ...]] = []  # the largest set that _constant_images built so far
_SCRATCH = Scratch()  # the temporaries of every pass: reused, not faulted in anew on every frame


def find_measurements(sparse: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """(uint8 map, 1 where ``sparse`` holds a measurement: finite and at least the smallest normal float32 (below
    it 1 / depth overflows); their bounding box (left, top, width, height), width 0 without any). The map is a
    scratch array, valid until the next call."""
    measured = cv2.inRange(sparse, *POSITIVE_FINITE, dst=_SCRATCH.array("measured", sparse.shape, np.uint8))
    cv2.threshold(measured, 0, 1, cv2.THRESH_BINARY, dst=measured)  # 1 where measured: readable as bool
    return measured, cv2.boundingRect(measured)


def fill_passes(
    sparse: np.ndarray, measured: np.ndarray, rgb: np.ndarray | None, config: CompletionConfig, dense: np.ndarray
) -> None:
    """``dense``: the depth of both passes over ``sparse`` (its pixels where ``measured`` is 1, bit-exactly), 0
    where unknown; all arrays cut to the box the measurements reach, ``rgb`` (H, W, 3) uint8 or None."""
    # The measurements in row-major order (consecutive points of a row are neighbors on it).
    row, col = np.divmod(np.flatnonzero(measured), sparse.shape[1])
    depth = sparse[row, col]
    inverse = _fill_along_rows(dense.shape, row, col, depth, rgb, config)
    _fill_strips_along_columns(inverse, row, col, dense, config)
    dense[row, col] = depth  # measured depth exactly, not a round trip via 1/d


def smooth_far_from_measurements(
    dense: np.ndarray, box: tuple[slice, slice], measured: np.ndarray, config: CompletionConfig
) -> None:
    """In place, inside ``box`` of ``dense`` (``measured``: the box's): pixels with no measurement within
    median_clear_rows rows and median_clear_cols columns take the median of the completion around them (median_px
    square, the box's border replicated), where that median and their own value are known.

    Such pixels lie between scan lines, interpolated from one sample above and one below; the median weighs
    several samples of both lines and so drops a single sample's noise or a wrong pick at a depth edge. Pixels
    next to a measurement keep their interpolation: that measurement predicts them best."""
    near, dense = near_measurements(measured, config), dense[box]
    median = cv2.medianBlur(dense, config.median_px, dst=_SCRATCH.array("median", dense.shape, np.float32))
    take, known = (_SCRATCH.array(name, dense.shape, bool) for name in ("take", "known"))
    np.equal(near, 0, out=take)
    take &= np.greater(median, 0, out=known)
    take &= np.greater(dense, 0, out=known)
    cv2.copyTo(median, take.view(np.uint8), dense)


def near_measurements(measured: np.ndarray, config: CompletionConfig) -> np.ndarray:
    """uint8, non-zero where a measurement lies within median_clear_rows rows and median_clear_cols columns (a
    scratch array, valid until the next call)."""
    clearance = np.ones((2 * config.median_clear_rows + 1, 2 * config.median_clear_cols + 1), np.uint8)
    return cv2.dilate(measured, clearance, dst=_SCRATCH.array("near", measured.shape, np.uint8))


def _fill_strips_along_columns(
    inverse: np.ndarray, row: np.ndarray, col: np.ndarray, dense: np.ndarray, config: CompletionConfig
) -> None:
    """The pass along the columns of ``inverse`` (the row pass's), written to ``dense`` as depth where it is known.

    It runs on strips of columns small enough for the CPU cache, each cut to the rows that its own measurements
    (``row``, ``col``, row-major) can reach: the box spans those of all strips, e.g. a tree's top rows.
    """
    height, width = inverse.shape
    # Equal strips of ~_STRIP_PIXELS, narrow enough for int16 column indices and cv2.remap
    strip = math.ceil(width / max(math.ceil(width * height / _STRIP_PIXELS), math.ceil(width / _MAX_STRIP_COLS)))
    constants = _constant_images((height, min(strip, width)))
    ones = constants[-1]
    for first in range(0, width, strip):
        # The rows of the measurements whose row pass reaches into the strip, sorted
        reaching = row[(col >= first - config.along_gap_px) & (col < first + strip + config.along_gap_px)]
        if reaching.size == 0:
            continue
        rows = slice(max(reaching[0] - config.extend_px, 0), reaching[-1] + config.across_gap_px + 1)
        cols = slice(first, first + strip)
        filled, out = _fill_along_columns(inverse[rows, cols], constants, config), dense[rows, cols]
        cv2.divide(ones[: out.shape[0], : out.shape[1]], filled, dst=out)
        cv2.threshold(out, 0, 0, cv2.THRESH_TOZERO, dst=out)  # unknown: negative -> 0


def _constant_images(shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Row index (int16 and float32), column index (int16), zeros and ones (float32) of ``shape``: views of
    read-only images kept from call to call (their values depend on the position only), grown when too small."""
    have = _CONSTANT_IMAGES[0][0].shape if _CONSTANT_IMAGES else (0, 0)
    if have[0] < shape[0] or have[1] < shape[1]:
        height, width = max(have[0], shape[0]), max(have[1], shape[1])
        if height * width > 2 * _STRIP_PIXELS:  # strips of a very different shape: keep only this one
            height, width = shape
        rows16 = np.repeat(np.arange(height, dtype=np.int16)[:, None], width, axis=1)
        cols16 = np.repeat(np.arange(width, dtype=np.int16)[None, :], height, axis=0)
        images = (
            rows16,
            rows16.astype(np.float32),
            cols16,
            np.zeros(rows16.shape, np.float32),
            np.ones(rows16.shape, np.float32),
        )
        for image in images:
            image.flags.writeable = False
        _CONSTANT_IMAGES[:] = [images]
    return tuple(image[: shape[0], : shape[1]] for image in _CONSTANT_IMAGES[0])


def _apart(a: np.ndarray, b: np.ndarray, config: CompletionConfig, gap: np.ndarray | None = None) -> np.ndarray:
    """Mask (255) of two surfaces: |a - b| > rel * max(a, b) + abs, for inverse depths a, b >= 0; with the max
    written as (a + b + |a - b|) / 2 so that no max is needed: |a - b| > (rel (a + b) / 2 + abs) / (1 - rel / 2).
    In scratch memory: valid until the next call."""
    scale = 1 / (1 - config.same_surface_rel / 2)
    weight = config.same_surface_rel / 2 * scale
    tolerance, difference = (_SCRATCH.array(name, a.shape, np.float32) for name in ("tolerance", "difference"))
    cv2.addWeighted(a, weight, b, weight, config.same_surface_abs * scale, dst=tolerance)
    if gap is not None and config.same_surface_slope:
        cv2.scaleAdd(gap, config.same_surface_slope * scale, tolerance, dst=tolerance)
    cv2.absdiff(a, b, dst=difference)
    return cv2.compare(difference, tolerance, cv2.CMP_GT, dst=_SCRATCH.array("apart", a.shape, np.uint8))


def _fill_along_rows(
    shape: tuple[int, int],
    row: np.ndarray,
    col: np.ndarray,
    depth: np.ndarray,
    rgb: np.ndarray | None,
    config: CompletionConfig,
) -> np.ndarray:
    """Inverse depth of the measurements (``depth`` at ``row``, ``col``, in row-major order; 0 elsewhere) with the
    gaps along rows filled: the first pass. In scratch memory.

    Works on the gaps between consecutive measurements of a row, "segments", then only on their pixels, a few
    percent of the image. A segment spans ``gap`` px from ``start``; its k-th pixel has its anchors k px before
    and gap - k px after, each counting only within reach. So a segment is at most three runs of pixels: the
    value before (k < c1), a blend (c1 <= k < c2: both anchors within reach, one surface), the value after.
    """
    reach, width = config.along_gap_px, shape[1]
    flat, value = row * width + col, 1 / depth
    inverse = _SCRATCH.array("inverse", shape, np.float32)
    inverse.fill(0)
    inverse.ravel()[flat] = value
    if reach == 0:
        return inverse
    start, gap, before, after = _row_segments(flat, row, col, value, reach, width)
    low, high = np.maximum(gap - reach, 1), np.minimum(gap - 1, reach)  # the pixels with both anchors in reach
    # as columns: OpenCV may read a 1-D array of up to 4 elements as a scalar
    same = _apart(before[:, None], after[:, None], config, gap.astype(np.float32)[:, None]).ravel() == 0
    split = gap // 2 + 1  # two surfaces meet half-way: the pixels before the split take the value before
    if rgb is not None:
        two_surfaces = np.flatnonzero((before > 0) & (after > 0) & ~same & (low <= high))
        split = _color_split(split, rgb, start, gap, two_surfaces, reach)
    split = np.clip(split, low, high + 1)
    one_sided, sided_cut = (before == 0) | (after == 0), np.where(before == 0, 1, gap)  # all after / all before
    c1 = np.where(one_sided, sided_cut, np.where(same, low, split))
    c2 = np.where(one_sided, sided_cut, np.where(same, high + 1, split))
    slope = (after - before) / gap.astype(np.float32)
    after_from = np.maximum(gap - reach, c2)
    _fill_runs(
        inverse.ravel(),
        np.concatenate([start + 1, start + c1, start + after_from]),
        np.concatenate([np.clip(c1 - 1, 0, reach), np.maximum(c2 - c1, 0), gap - after_from]),
        np.concatenate([before, before + c1.astype(np.float32) * slope, after]),
        np.concatenate([np.zeros_like(slope), slope, np.zeros_like(slope)]),
    )
    return inverse


def _row_segments(
    flat: np.ndarray, row: np.ndarray, col: np.ndarray, value: np.ndarray, reach: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(start, gap, before, after) of the segments, before / after 0 where nothing is there: one right of every
    point, to the next point of its row or else over the row's end, and one left of every row's first point,
    starting n + 1 px left of it; over a row's end or start only as far as reach and the image go."""
    has_next = np.append(row[1:] == row[:-1], False)
    first = np.flatnonzero(np.append(True, ~has_next[:-1]))  # each row's first point
    n_first = np.minimum(reach, col[first])
    gap_right = np.where(has_next, np.append(np.diff(col), 0), np.minimum(reach, width - 1 - col) + 1)
    after_right = np.where(has_next, np.append(value[1:], np.float32(0)), np.float32(0))
    return (
        np.concatenate([flat, flat[first] - n_first - 1]),
        np.concatenate([gap_right, n_first + 1]),
        np.concatenate([value, np.zeros(first.size, np.float32)]),
        np.concatenate([after_right, value[first]]),
    )


def _fill_runs(
    flat_image: np.ndarray, start: np.ndarray, length: np.ndarray, value: np.ndarray, slope: np.ndarray
) -> None:
    """flat_image[start + j] = value + slope * j for 0 <= j < length, for all runs at once (lengths >= 0).

    Per pixel, its run and j are cumulative sums (of run starts, of ones that restart at each run); in scratch
    memory, as the pixels are many (~60k on a KITTI frame)."""
    runs = np.flatnonzero(length > 0)
    if runs.size == 0:
        return
    start, length, value, slope = start[runs], length[runs], value[runs], slope[runs]
    end = np.cumsum(length)
    run, j, at = (_SCRATCH.array(name, (int(end[-1]),), np.intp) for name in ("run", "j", "at"))
    run.fill(0)
    run[end[:-1]] = 1
    np.cumsum(run, out=run)
    j.fill(1)
    j[0], j[end[:-1]] = 0, 1 - length[:-1]
    np.cumsum(j, out=j)
    np.add(np.take(start, run, out=at), j, out=at)
    fill, step = (_SCRATCH.array(name, j.shape, np.float32) for name in ("fill", "step"))
    np.multiply(np.take(slope, run, out=step), j, out=step, dtype=np.float32)
    flat_image[at] = np.add(np.take(value, run, out=fill), step, out=fill)


def _color_split(
    split: np.ndarray, rgb: np.ndarray, start: np.ndarray, gap: np.ndarray, chosen: np.ndarray, reach: int
) -> np.ndarray:
    """``split`` with the segments ``chosen`` split away from the strongest color step between their anchors.

    Pixel k joins the side away from the strongest step in (0, k] vs (k, gap]: with that step first at j1 and
    last at j2, pixels before j1 join "before", from j2 on "after", and in between (a tie) the nearer side.
    The step at a pixel is the luma-weighted sum of its absolute RGB difference to the pixel before it.
    """
    if chosen.size == 0:
        return split
    offsets = np.arange(1, 2 * reach + 1)
    row, col = np.divmod(np.minimum(start[chosen, None] + offsets, rgb.shape[0] * rgb.shape[1] - 1), rgb.shape[1])
    steps = cv2.cvtColor(cv2.absdiff(rgb[row, col], rgb[row, col - 1]), cv2.COLOR_RGB2GRAY)
    steps = np.where(offsets <= gap[chosen, None], steps, np.int16(-1))
    strongest = steps == steps.max(axis=1, keepdims=True)
    j1, j2 = strongest.argmax(axis=1) + 1, 2 * reach - strongest[:, ::-1].argmax(axis=1)
    split = split.copy()
    split[chosen] = np.maximum(j1, np.minimum(j2, split[chosen]))
    return split


def _fill_along_columns(inverse: np.ndarray, constants: tuple[np.ndarray, ...], config: CompletionConfig) -> np.ndarray:
    """The pass along the columns of inverse depth (0 = empty): inverse depth, negative where still unknown (no
    anchor within reach, or the sky); ``constants`` from _constant_images, at least as large. In scratch memory.

    Every pixel is treated alike, which keeps this to a few OpenCV calls: a missing anchor reads as _NO_ANCHOR,
    never the same surface as a real one, and lies out of reach, never the nearer; so a pixel with an anchor on
    one side only gets that side's value, and one with none gets _NO_ANCHOR.
    """
    reach = config.across_gap_px
    rows16, rows, cols16, zeros, _ = (c[: inverse.shape[0], : inverse.shape[1]] for c in constants)
    buffer = partial(_SCRATCH.array, shape=inverse.shape)
    # Against an image of zeros: cv2.compare reads a 1 x 1 image and a scalar as two scalars.
    valid = cv2.compare(inverse, zeros, cv2.CMP_GT, dst=buffer("valid", dtype=np.uint8))
    # The nearest valid row above / below each pixel within reach: one-sided max / min filters over the row
    # indices of the valid pixels, the others being the int16 extremes.
    window = np.ones((reach + 1, 1), np.uint8)
    above16, below16 = buffer("above16", dtype=np.int16), buffer("below16", dtype=np.int16)
    above16.fill(_INT16.min)
    below16.fill(_INT16.max)
    cv2.copyTo(rows16, valid, above16)
    cv2.copyTo(rows16, valid, below16)
    top = cv2.reduce(below16, 0, cv2.REDUCE_MIN).astype(np.int32)  # of each column, before this pass fills it
    sky_from = np.clip(top - config.extend_px, _INT16.min, None).astype(np.int16)
    sky = np.less(rows16[:, :1], sky_from, out=buffer("sky", dtype=bool))
    cv2.dilate(above16, window, dst=above16, anchor=(0, reach))
    cv2.erode(below16, window, dst=below16, anchor=(0, 0))
    # The anchors' values: cv2.remap with (column, row) int16 maps; a missing anchor's row lies outside.
    at = cv2.merge([cols16, above16], dst=_SCRATCH.array("at", (*inverse.shape, 2), np.int16))
    x_above = cv2.remap(
        inverse, at, None, cv2.INTER_NEAREST, dst=buffer("x_above", dtype=np.float32), borderValue=_NO_ANCHOR
    )
    cv2.merge([cols16, below16], dst=at)
    x_below = cv2.remap(
        inverse, at, None, cv2.INTER_NEAREST, dst=buffer("x_below", dtype=np.float32), borderValue=_NO_ANCHOR
    )
    above, below = buffer("above", dtype=np.float32), buffer("below", dtype=np.float32)
    np.copyto(above, above16)
    np.copyto(below, below16)
    # Linear interpolation: each side weighs as much as the distance to the other side.
    w_above = cv2.addWeighted(below, _WEIGHT_SCALE, rows, -_WEIGHT_SCALE, 0, dst=buffer("w_above", dtype=np.float32))
    w_below = cv2.addWeighted(rows, _WEIGHT_SCALE, above, -_WEIGHT_SCALE, 0, dst=buffer("w_below", dtype=np.float32))
    # 0 on valid pixels: both weights are 0
    blend = cv2.blendLinear(x_above, x_below, w_above, w_below, dst=buffer("blend", dtype=np.float32))
    # Take "above" where it is nearer (or as near), and in the sky, where it is missing: there is none above.
    take_above = cv2.compare(w_below, w_above, cv2.CMP_LE, dst=buffer("take_above", dtype=np.uint8))
    cv2.bitwise_or(take_above, sky.view(np.uint8), dst=take_above)
    gap = cv2.subtract(below, above, dst=buffer("gap", dtype=np.float32))
    one_side = cv2.bitwise_or(_apart(x_above, x_below, config, gap), valid, dst=buffer("one_side", dtype=np.uint8))
    cv2.copyTo(x_above, take_above, x_below)  # valid: above = below = itself
    filled = cv2.copyTo(x_below, one_side, blend)
    # Above the top measurement the column's top value, extend_px up (beyond across_gap_px too): the rows up
    # to there are the upper parts of what the top ring hits, which the column pass cannot reach.
    extended = np.less(rows16[:, :1], top.astype(np.int16), out=buffer("extended", dtype=bool))
    extended ^= sky  # the sky is the part of them more than extend_px above the top
    top_value = inverse[np.minimum(top, inverse.shape[0] - 1), np.arange(inverse.shape[1])]
    np.copyto(filled, top_value, where=extended)
    return filled
