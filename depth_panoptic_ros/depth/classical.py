"""The package's default depth completion: scan-line interpolation of inverse depth, CPU-only and fast.

IP-Basic fills every hole with the nearest depth found by max-filters, which biases smooth surfaces towards
the camera and turns ground planes into staircases. A LiDAR projection is not scattered points but scan lines
(rings) that are dense along the line (gaps of 1-3 px) and 4-7 px apart across lines. So the gaps are filled
in two 1-D passes, first along the lines and then across them, each taking the nearest measured pixel on
either side:

- both sides on the same surface: linear interpolation of *inverse* depth, which is exact for any plane
  (1/z is affine in the pixel coordinates of a plane);
- a depth discontinuity between them: one side's value, never a blend (blends are the "flying pixels" of
  a 3D cloud). Along the lines the boundary goes to the strongest colour step between the two measurements
  when an image is given; across lines it goes half-way: on the depth_demo ground truth, colour steps
  between rings were texture more often than object edges and placed the boundary worse.
- one side only: the value is carried to the end of the reach (line ends, below the bottom ring), but
  upwards only ``extend_px`` above the top measurement of a column; the sky above stays 0 = unknown
  instead of getting invented depth.

Measured pixels are returned bit-exactly. Tried and dropped because they lowered accuracy on the KITTI
hold-out benchmark (bench/completion.py): removing LiDAR points that look occluded in the camera view,
a final median/Gaussian smoothing, and a guided-filter refinement with the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from depth_panoptic_ros.depth.ip_basic import check_sparse_depth

_FAR = np.float32(1e5)  # anchor position meaning "none within reach": outside any image, so remap reads 0


@dataclass(frozen=True)
class CompletionConfig:
    """Defaults measured on the KITTI hold-out benchmark (HDL-64 at 375x1242: lines ~2 px dense, ~5 px apart)."""

    along_gap_px: int = 8  # widest gap bridged along a scan line, i.e. along image rows
    across_gap_px: int = 32  # widest gap bridged across scan lines (along columns), e.g. a dark car window
    extend_px: int = 16  # how far the top measurement of a column is carried upwards
    # Two inverse depths a, b lie on one surface if |a - b| <= rel * max(a, b) + abs. The absolute part (1/m)
    # keeps far ground interpolated, whose depth changes by metres from one scan line to the next.
    same_surface_rel: float = 0.1
    same_surface_abs: float = 0.01

    def __post_init__(self) -> None:
        for name in ("along_gap_px", "across_gap_px", "extend_px"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"CompletionConfig.{name}: expected an int >= 0, got {value!r}")
        for name in ("same_surface_rel", "same_surface_abs"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"CompletionConfig.{name}: expected >= 0, got {getattr(self, name)!r}")


def complete_depth(
    sparse: np.ndarray, rgb: np.ndarray | None = None, config: CompletionConfig | None = None
) -> np.ndarray:
    """Dense float32 depth in metres (0 = unknown) from sparse depth (metres, 0/NaN = none) and optional RGB.

    The image, when given, (H, W, 3) uint8 RGB of the same size, only places depth boundaries along scan lines.
    """
    config = config or CompletionConfig()
    sparse = check_sparse_depth(sparse)
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != (*sparse.shape, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"rgb: expected uint8 of shape {(*sparse.shape, 3)}, got {rgb.dtype} {rgb.shape}")
    measured = cv2.bitwise_and(cv2.compare(sparse, 0, cv2.CMP_GT), cv2.compare(sparse, np.inf, cv2.CMP_LT))
    dense = np.zeros_like(sparse)
    rows_with_data = np.flatnonzero(measured.any(axis=1))
    if rows_with_data.size == 0:
        return dense
    top = max(int(rows_with_data[0]) - config.extend_px, 0)  # nothing above this row can be filled: skip it
    inverse = cv2.copyTo(cv2.divide(1.0, sparse[top:]), measured[top:], np.zeros_like(sparse[top:]))
    coords = _coordinate_maps(inverse.shape)
    steps = None if rgb is None else _colour_steps_along_rows(rgb[top:])
    inverse = _fill_gaps(inverse, 1, coords, config.along_gap_px, config, steps)
    sky = coords[0] < np.argmax(inverse > 0, axis=0) - config.extend_px  # before the across pass fills it
    inverse = _fill_gaps(inverse, 0, coords, config.across_gap_px, config, None)
    inverse[sky] = 0
    np.divide(1, inverse, out=dense[top:], where=inverse > 0)
    return cv2.copyTo(sparse, measured, dense)  # measured depth exactly, not its round trip through 1/d


def _coordinate_maps(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index of every pixel, float32 as cv2.remap wants them."""
    rows = np.repeat(np.arange(shape[0], dtype=np.float32)[:, None], shape[1], axis=1)
    cols = np.repeat(np.arange(shape[1], dtype=np.float32)[None, :], shape[0], axis=0)
    return rows, cols


def _colour_steps_along_rows(rgb: np.ndarray) -> np.ndarray:
    """steps[r, c] = colour change between pixels c-1 and c (luma-weighted sum of absolute RGB differences)."""
    steps = np.zeros(rgb.shape[:2], np.int16)
    steps[:, 1:] = cv2.cvtColor(cv2.absdiff(rgb[:, 1:], rgb[:, :-1]), cv2.COLOR_RGB2GRAY)
    return steps


def _fill_gaps(
    inverse: np.ndarray,
    axis: int,
    coords: tuple[np.ndarray, np.ndarray],
    reach: int,
    config: CompletionConfig,
    steps: np.ndarray | None,
) -> np.ndarray:
    """One 1-D pass over an inverse-depth map (0 = empty): along columns (axis 0) or rows (axis 1).

    Every pixel is treated alike, which keeps this to a few whole-image OpenCV calls: a measured pixel is its
    own anchor on both sides (so it keeps its value), and a pixel with an anchor on one side only gets that
    side's value, because the missing side reads as 0 (no same surface) and infinitely far (not the nearer).
    """
    pos, other = coords[axis], coords[1 - axis]
    valid = cv2.compare(inverse, 0, cv2.CMP_GT)
    # The nearest valid pixel before / after each pixel within reach, as a position along the axis: one-sided
    # max / min filters over the positions of the valid pixels.
    window = np.ones((reach + 1, 1) if axis == 0 else (1, reach + 1), np.uint8)
    last = (0, reach) if axis == 0 else (reach, 0)  # OpenCV anchors are (x, y)
    before = cv2.dilate(cv2.copyTo(pos, valid, np.full_like(pos, -_FAR)), window, anchor=last)
    after = cv2.erode(cv2.copyTo(pos, valid, np.full_like(pos, _FAR)), window, anchor=(0, 0))
    if axis == 0:
        x_before, x_after = (cv2.remap(inverse, other, at, cv2.INTER_NEAREST) for at in (before, after))
    else:
        x_before, x_after = (cv2.remap(inverse, at, other, cv2.INTER_NEAREST) for at in (before, after))
    tolerance = cv2.addWeighted(cv2.max(x_before, x_after), config.same_surface_rel, 0, 0, config.same_surface_abs)
    same = cv2.compare(cv2.absdiff(x_before, x_after), tolerance, cv2.CMP_LE)
    # t = share of the way from "before" to "after": 0 on a measured pixel, ~0 / ~1 with the far side missing.
    t = cv2.divide(cv2.subtract(pos, before), cv2.max(cv2.subtract(after, before), 1.0))
    blend = cv2.add(x_before, cv2.multiply(t, cv2.subtract(x_after, x_before)))
    nearer = cv2.compare(t, 0.5, cv2.CMP_LE)
    if steps is not None:
        between = np.flatnonzero((same == 0) & (x_before > 0) & (x_after > 0))  # two surfaces, few pixels
        nearer = _colour_split(nearer, steps, between, pos.ravel()[between], before, after, reach)
    filled = cv2.copyTo(x_before, nearer, x_after)  # between two surfaces: one side's value, never a blend
    return cv2.copyTo(blend, same, filled)


def _colour_split(
    nearer: np.ndarray,
    steps: np.ndarray,
    flat: np.ndarray,
    col: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    reach: int,
) -> np.ndarray:
    """Along rows: pixels ``flat`` (columns ``col``) join the side away from the strongest colour step between
    their anchors."""
    if flat.size == 0:
        return nearer
    steps = steps.ravel()
    n_before = (col - before.ravel()[flat]).astype(np.int32)  # steps at flat-n_before+1..flat: towards "before"
    n_after = (after.ravel()[flat] - col).astype(np.int32)  # steps at flat+1..flat+n_after: towards "after"
    edge_before = np.zeros(flat.size, np.int16)
    edge_after = np.zeros(flat.size, np.int16)
    for k in range(reach):  # a handful of offsets, each over the few discontinuity pixels only
        edge_before = np.maximum(edge_before, np.where(k < n_before, steps[np.maximum(flat - k, 0)], 0))
        edge_after = np.maximum(edge_after, np.where(k < n_after, steps[np.minimum(flat + k + 1, steps.size - 1)], 0))
    decided = edge_before != edge_after
    nearer.ravel()[flat[decided]] = np.where(edge_after[decided] > edge_before[decided], 255, 0)
    return nearer
