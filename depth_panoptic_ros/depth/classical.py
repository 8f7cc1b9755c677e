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

Speed (it has to keep up with IP-Basic): all work stays inside the box the measurements can reach. The two
passes run as compiled numba kernels (classical_compiled.py: one walk along each row, one along each column
of the transposed box), the median and its choice of pixels as one more. Where numba cannot be imported (not
installed, or no release yet for a new Python) the same steps run as OpenCV / numpy calls (classical_opencv.py),
bit-identical and about twice as slow; the choice is made once, at import, and logged there (``PASSES`` names
it). Only this module has such a fallback: the pipeline's other kernels (projection, instance depth, cloud) need
numba. The kernels are compiled on the first import (~13 s on 2 cores) into numba's on-disk cache, the package's
__pycache__ or else ~/.cache/numba, and loaded from it by later imports: no frame waits for them (without a
writable cache directory they compile at every start, compiled.py).

Measured pixels are returned bit-exactly. Tried and dropped because they lowered accuracy on the KITTI
benchmark (bench/completion.py): removing LiDAR points that look occluded in the camera view, a median
or Gaussian smoothing of every pixel, and a guided-filter refinement with the image.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from depth_panoptic_ros.depth import classical_opencv
from depth_panoptic_ros.depth.ip_basic import check_sparse_depth

try:
    from depth_panoptic_ros.depth import classical_compiled

    find_measurements = classical_compiled.find_measurements
    fill_passes = classical_compiled.fill_passes
    smooth_far_from_measurements = classical_compiled.smooth_far_from_measurements
    PASSES = "compiled (numba)"
# numba missing or none for this Python yet
except ImportError as exc:
    find_measurements = classical_opencv.find_measurements
    fill_passes = classical_opencv.fill_passes
    smooth_far_from_measurements = classical_opencv.smooth_far_from_measurements
    PASSES = "OpenCV (numba not available)"
    logging.getLogger(__name__).warning(
        "classical depth completion: %s; running its OpenCV passes, about twice as slow (pip install numba; "
        "NUMBA_CACHE_DIR names a writable cache directory)",
        exc,
    )

# The OpenCV passes index rows as int16; both paths refuse alike what that cannot hold.
_MAX_ROWS = int(np.iinfo(np.int16).max)


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
    if sparse.shape[0] + config.across_gap_px > _MAX_ROWS:  # so that a missing row is farther than any reach
        limit = _MAX_ROWS - config.across_gap_px
        raise ValueError(f"sparse depth: expected at most {limit} rows (int16 row indices), got {sparse.shape[0]}")
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != (*sparse.shape, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"rgb: expected uint8 of shape {(*sparse.shape, 3)}, got {rgb.dtype} {rgb.shape}")
    measured, bounds = find_measurements(sparse)
    dense = np.zeros(sparse.shape, np.float32)  # C order whatever the input's: OpenCV writes into it
    box = _reachable_box(bounds, config)
    if box is None:
        return dense
    measured, dense_box = measured[box], dense[box]
    fill_passes(sparse[box], measured, None if rgb is None else rgb[box], config, dense_box)
    if config.median_px:
        smooth_far_from_measurements(dense, box, measured, config)
    return dense


def _reachable_box(bounds: tuple[int, int, int, int], config: CompletionConfig) -> tuple[slice, slice] | None:
    """The rows and columns the passes can fill: the measurements' bounding box (left, top, width, height) grown by
    the reach of each pass (upwards by extend_px only, so the sky above the top line costs nothing); None without
    measurements."""
    left, top, width, height = bounds
    if width == 0:
        return None
    rows = slice(max(top - config.extend_px, 0), top + height + config.across_gap_px)
    return rows, slice(max(left - config.along_gap_px, 0), left + width + config.along_gap_px)
