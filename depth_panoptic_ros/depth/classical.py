"""The package's default depth completion: scan-line interpolation of inverse depth, CPU-only and fast.

IP-Basic fills every hole with the nearest depth found by max-filters, which biases smooth surfaces towards
the camera and turns ground planes into staircases. A LiDAR projection is not scattered points but scan lines
(rings) that are dense along the line (gaps of 1-3 px) and 4-7 px apart across lines. So the gaps are filled
in two 1-D passes, first along the lines and then across them, each taking the nearest measured pixel on
either side:

- both sides on the same surface: linear interpolation of *inverse* depth, which is exact for any plane
  (1/z is affine in the pixel coordinates of a plane). "Same surface" allows a relative step, a small
  absolute one and a step that grows with the gap (what a ground-like plane changes over it);
- a depth discontinuity between them: one side's value, never a blend (blends are the "flying pixels" of
  a 3D cloud). Along the lines the boundary goes to the strongest color step between the two measurements
  when an image is given; across lines it goes half-way: on the depth_demo ground truth, color steps
  between rings were texture more often than object edges and placed the boundary worse.
- one side only: that side's value, carried to the end of the reach (line ends, below the bottom ring), and
  upwards ``extend_px`` above the top measurement of a column (the upper parts of what the top ring hits);
  the sky above stays 0 = unknown instead of getting invented depth.

Last, pixels far from every measurement (between scan lines) take the median of the completion around them:
they were interpolated from one sample above and one below, and on real ground truth the median of several
samples of both lines has ~4 % lower RMSE there; pixels next to a measurement keep their interpolation (on
the hold-out protocols, where the scored points lie on the lines, a median everywhere doubled the MAE).

Speed (it has to keep up with IP-Basic): all work stays inside the box the measurements can reach; the pass
along the lines works on the gaps between consecutive measurements of a row, a few percent of the pixels; the
pass across them on strips of columns small enough for the CPU cache, with a fixed number of OpenCV calls.

Measured pixels are returned bit-exactly. Tried and dropped because they lowered accuracy on the KITTI
benchmark (bench/completion.py): removing LiDAR points that look occluded in the camera view, a median
or Gaussian smoothing of every pixel, and a guided-filter refinement with the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from depth_panoptic_ros.depth.ip_basic import check_sparse_depth

# cv2.blendLinear divides by (w1 + w2 + 1e-5): weights in 1/1024 px keep that guard below float32 rounding.
_WEIGHT_SCALE = 1024.0
# The pass along the columns runs on strips of about this many pixels: their temporaries (256 KiB in float32)
# then stay in a 2 MiB L2 cache instead of streaming through memory, ~1.5x faster than whole images.
_STRIP_PIXELS = 1 << 16
_INT16 = np.iinfo(np.int16)  # row indices are int16 in the pass along the columns: the fastest morphology
_NO_ANCHOR = -1e20  # what the pass along the columns reads for a missing anchor: never one surface with a real one
# What counts as measured: NaN fails both bounds, and below the smallest normal float32 1 / depth overflows.
_POSITIVE_FINITE = (float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max))


@dataclass(frozen=True)
class CompletionConfig:
    """Defaults chosen on the real KITTI protocols of bench/completion.py (object and raw hold-out, ring-geometry
    input on semi-dense ground truth; HDL-64 at 375x1242: lines ~2 px dense, ~5 px apart) and checked there by
    leave-one-frame-out, see BENCHMARKS.md."""

    along_gap_px: int = 8  # widest gap bridged along a scan line, i.e. along image rows
    across_gap_px: int = 32  # widest gap bridged across scan lines (along columns), e.g. a dark car window
    extend_px: int = 48  # how far the top measurement of a column is carried upwards
    # Two inverse depths a, b, gap px apart, lie on one surface if |a - b| <= rel * max(a, b) + abs + slope * gap.
    # The slope part (1/m per px) is what a plane changes over the gap: ground seen from 1.65 m with f = 721 px
    # changes by 1 / (1.65 * 721) = 0.00084 per row whatever its depth, so far ground stays interpolated across
    # scan lines meters apart in depth, while a pole 20 m in front of a wall 3 px away does not blend into it.
    same_surface_rel: float = 0.2
    same_surface_abs: float = 0.005
    same_surface_slope: float = 0.004
    median_px: int = 5  # 0 (off), 3 or 5: median window of the pixels far from every measurement
    median_clear_rows: int = 1  # "far": no measurement within this many rows ...
    median_clear_cols: int = 4  # ... and this many columns

    def __post_init__(self) -> None:
        for name in ("along_gap_px", "across_gap_px", "extend_px", "median_clear_rows", "median_clear_cols"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"CompletionConfig.{name}: expected an int >= 0, got {value!r}")
        if not 0 <= self.same_surface_rel <= 1:  # from 1 on, every pair of depths is one surface
            raise ValueError(f"CompletionConfig.same_surface_rel: expected in [0, 1], got {self.same_surface_rel!r}")
        for name in ("same_surface_abs", "same_surface_slope"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"CompletionConfig.{name}: expected >= 0, got {getattr(self, name)!r}")
        if self.median_px not in (0, 3, 5):  # the sizes cv2.medianBlur takes for float32
            raise ValueError(f"CompletionConfig.median_px: expected 0, 3 or 5, got {self.median_px!r}")


def complete_depth(
    sparse: np.ndarray, rgb: np.ndarray | None = None, config: CompletionConfig | None = None
) -> np.ndarray:
    """Dense float32 depth in meters (0 = unknown) from sparse depth (meters, 0/NaN = none) and optional RGB.

    The image, when given, (H, W, 3) uint8 RGB of the same size, only places depth boundaries along scan lines.
    """
    config = config or CompletionConfig()
    sparse = check_sparse_depth(sparse)
    if sparse.shape[0] + config.across_gap_px > _INT16.max:  # so that a missing row is farther than any reach
        limit = _INT16.max - config.across_gap_px
        raise ValueError(f"sparse depth: expected at most {limit} rows (int16 row indices), got {sparse.shape[0]}")
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != (*sparse.shape, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"rgb: expected uint8 of shape {(*sparse.shape, 3)}, got {rgb.dtype} {rgb.shape}")
    measured = cv2.inRange(sparse, _POSITIVE_FINITE[0], _POSITIVE_FINITE[1])  # 255 where measured
    dense = np.zeros_like(sparse)
    box = _reachable_box(measured, config)
    if box is None:
        return dense
    sparse, measured, dense_box = sparse[box], measured[box], dense[box]
    inverse = _fill_along_rows(sparse, measured != 0, None if rgb is None else rgb[box], config)
    height, width = inverse.shape
    strip = math.ceil(width / math.ceil(width * height / _STRIP_PIXELS))  # equal strips of ~_STRIP_PIXELS
    coords = _coordinate_maps((height, min(strip, width)))
    ones = np.ones_like(coords[2])
    for first in range(0, width, strip):
        cols = slice(first, first + strip)
        filled, out = _fill_along_columns(inverse[:, cols], coords, config), dense_box[:, cols]
        cv2.divide(ones[:, : out.shape[1]], filled, dst=out)
        cv2.threshold(out, 0, 0, cv2.THRESH_TOZERO, dst=out)  # unknown: negative -> 0
        cv2.copyTo(sparse[:, cols], measured[:, cols], out)  # measured depth exactly, not a round trip via 1/d
    if config.median_px:
        _smooth_far_from_measurements(dense_box, measured, config)
    return dense


def _smooth_far_from_measurements(dense: np.ndarray, measured: np.ndarray, config: CompletionConfig) -> None:
    """In place: pixels with no measurement within median_clear_rows rows and median_clear_cols columns take the
    median of the completion around them (median_px square), where that median and their own value are known.

    Such pixels lie between scan lines, interpolated from one sample above and one below; the median weighs
    several samples of both lines and so drops a single sample's noise or a wrong pick at a depth edge. Pixels
    next to a measurement keep their interpolation: that measurement predicts them best."""
    clearance = np.ones((2 * config.median_clear_rows + 1, 2 * config.median_clear_cols + 1), np.uint8)
    near = cv2.dilate(measured, clearance)
    median = cv2.medianBlur(dense, config.median_px)
    np.copyto(dense, median, where=(near == 0) & (median > 0) & (dense > 0))


def _reachable_box(measured: np.ndarray, config: CompletionConfig) -> tuple[slice, slice] | None:
    """The rows and columns the passes can fill: the measurements' bounding box grown by the reach of each pass
    (upwards by extend_px only, so the sky above the top line costs nothing); None without measurements."""
    left, top, width, height = cv2.boundingRect(measured)
    if width == 0:
        return None
    rows = slice(max(top - config.extend_px, 0), top + height + config.across_gap_px)
    return rows, slice(max(left - config.along_gap_px, 0), left + width + config.along_gap_px)


def _coordinate_maps(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row index of every pixel in int16 and float32, and column index in float32 (as cv2.remap wants it)."""
    rows = np.repeat(np.arange(shape[0], dtype=np.float32)[:, None], shape[1], axis=1)
    cols = np.repeat(np.arange(shape[1], dtype=np.float32)[None, :], shape[0], axis=0)
    return rows.astype(np.int16), rows, cols


def _apart(a: np.ndarray, b: np.ndarray, config: CompletionConfig, gap: np.ndarray | None = None) -> np.ndarray:
    """Mask (255) of two surfaces: |a - b| > rel * max(a, b) + abs, for inverse depths a, b >= 0; with the max
    written as (a + b + |a - b|) / 2 so that no max is needed: |a - b| > (rel (a + b) / 2 + abs) / (1 - rel / 2)."""
    scale = 1 / (1 - config.same_surface_rel / 2)
    weight = config.same_surface_rel / 2 * scale
    tolerance = cv2.addWeighted(a, weight, b, weight, config.same_surface_abs * scale)
    if gap is not None and config.same_surface_slope:
        tolerance = cv2.scaleAdd(gap, config.same_surface_slope * scale, tolerance)
    return cv2.compare(cv2.absdiff(a, b), tolerance, cv2.CMP_GT)


def _fill_along_rows(
    sparse: np.ndarray, measured: np.ndarray, rgb: np.ndarray | None, config: CompletionConfig
) -> np.ndarray:
    """Inverse depth of the measurements (0 elsewhere) with the gaps along rows filled: the first pass.

    Works on the gaps between consecutive measurements of a row, "segments", then only on their pixels, a few
    percent of the image. A segment spans ``gap`` px from ``start``; its k-th pixel has its anchors k px before
    and gap - k px after, each counting only within reach. So a segment is at most three runs of pixels: the
    value before (k < c1), a blend (c1 <= k < c2: both anchors within reach, one surface), the value after.
    """
    reach, width = config.along_gap_px, sparse.shape[1]
    flat = np.flatnonzero(measured)  # row-major: consecutive points of a row are neighbors on it
    row, col = np.divmod(flat, width)
    value = 1 / sparse[row, col]
    inverse = np.zeros(sparse.shape, np.float32)
    inverse.ravel()[flat] = value
    if reach == 0:
        return inverse
    start, gap, before, after = _row_segments(flat, row, col, value, reach, width)
    low, high = np.maximum(gap - reach, 1), np.minimum(gap - 1, reach)  # the pixels with both anchors in reach
    same = _apart(before, after, config, gap.astype(np.float32)).ravel() == 0
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
    """flat_image[start + j] = value + slope * j for 0 <= j < length, for all runs at once."""
    run = np.repeat(np.arange(length.size), length)  # of every pixel
    j = np.arange(run.size) - (np.cumsum(length) - length)[run]
    flat_image[start[run] + j] = value[run] + slope[run] * j.astype(np.float32)


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


def _fill_along_columns(
    inverse: np.ndarray, coords: tuple[np.ndarray, np.ndarray, np.ndarray], config: CompletionConfig
) -> np.ndarray:
    """The pass along the columns of inverse depth (0 = empty): inverse depth, negative where still unknown (no
    anchor within reach, or the sky); ``coords`` from _coordinate_maps.

    Every pixel is treated alike, which keeps this to a few OpenCV calls: a missing anchor reads as _NO_ANCHOR,
    never the same surface as a real one, and lies out of reach, never the nearer; so a pixel with an anchor on
    one side only gets that side's value, and one with none gets _NO_ANCHOR.
    """
    reach = config.across_gap_px
    rows16, rows, cols = (c[:, : inverse.shape[1]] for c in coords)
    valid = (inverse > 0).view(np.uint8)  # 0 / 1 (cv2.compare refuses a 1 x 1 image and a scalar)
    # The nearest valid row above / below each pixel within reach: one-sided max / min filters over the row
    # indices of the valid pixels, the others being the int16 extremes.
    window = np.ones((reach + 1, 1), np.uint8)
    above = cv2.copyTo(rows16, valid, np.full_like(rows16, _INT16.min))
    below = cv2.copyTo(rows16, valid, np.full_like(rows16, _INT16.max))
    top = cv2.reduce(below, 0, cv2.REDUCE_MIN).astype(np.int32)  # of each column, before this pass fills it
    sky = rows16[:, :1] < np.clip(top - config.extend_px, _INT16.min, None).astype(np.int16)
    above = cv2.dilate(above, window, anchor=(0, reach)).astype(np.float32)
    below = cv2.erode(below, window, anchor=(0, 0)).astype(np.float32)
    x_above, x_below = (
        cv2.remap(inverse, cols, at, cv2.INTER_NEAREST, borderValue=_NO_ANCHOR) for at in (above, below)
    )
    # Linear interpolation: each side weighs as much as the distance to the other side.
    w_above = cv2.addWeighted(below, _WEIGHT_SCALE, rows, -_WEIGHT_SCALE, 0)
    w_below = cv2.addWeighted(rows, _WEIGHT_SCALE, above, -_WEIGHT_SCALE, 0)
    blend = cv2.blendLinear(x_above, x_below, w_above, w_below)  # 0 on valid pixels: both weights are 0
    # Take "above" where it is nearer (or as near), and in the sky, where it is missing: there is none above.
    take_above = cv2.bitwise_or(cv2.compare(w_below, w_above, cv2.CMP_LE), sky.view(np.uint8))
    # valid: above = below = itself
    one_side = cv2.bitwise_or(_apart(x_above, x_below, config, cv2.subtract(below, above)), valid)
    filled = cv2.copyTo(cv2.copyTo(x_above, take_above, x_below), one_side, blend)
    # Above the top measurement the column's top value, extend_px up (beyond across_gap_px too): the rows up
    # to there are the upper parts of what the top ring hits, which the column pass cannot reach.
    extended = ~sky & (rows16[:, :1] < top.astype(np.int16))
    top_value = inverse[np.minimum(top, inverse.shape[0] - 1), np.arange(inverse.shape[1])]
    return cv2.copyTo(np.broadcast_to(top_value, filled.shape), extended.view(np.uint8), filled)
