"""Depth as color: a dense depth map with a legend in meters, and the Panoptic-DepthLab instance-depth view.

Both map near to red and far to blue. Depth is normalized to a *nearness* t in [0, 1] (1 at ``near``, 0 at
``far``), linear in depth or, with ``inverse``, linear in 1/depth, which spreads the near range where the
depth resolution of stereo and LiDAR is highest.
"""

from __future__ import annotations

import cv2
import numpy as np

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.products.canvas import WHITE, pack_rgb, put_text, text_size, unpack_rgb
from depth_panoptic_ros.products.instance_depth import InstanceDepthTable
from depth_panoptic_ros.products.palette import draw_boundaries, overlay_segments, paint_segments
from depth_panoptic_ros.products.segments import SegmentRuns

LEGEND_TICKS = 5
LEGEND_BACKGROUND = (32, 32, 32)
STUFF_BRIGHTNESS = 0.35  # stuff recedes so that the depth-colored things stand out
IMAGE_ALPHA = 0.4  # share of the camera image under the instance-depth colors
MIN_LABEL_FRACTION = 1 / 2000  # instances smaller than this share of the image get no label


def nearness(depth: np.ndarray, near: float, far: float, inverse: bool = False) -> np.ndarray:
    """t in [0, 1], 1 at ``near`` and 0 at ``far`` (clipped beyond them), linear in depth or in 1/depth."""
    depth = np.asarray(depth)
    # float32 maps stay float32 (half the memory traffic of float64), computed in place in one output array.
    t = np.empty(depth.shape, np.result_type(depth, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        if inverse:
            np.divide(1.0, depth, out=t)
            t -= 1.0 / far
            t /= 1.0 / near - 1.0 / far
        else:
            np.subtract(far, depth, out=t)
            t /= far - near
    return np.clip(t, 0.0, 1.0, out=t)


def depth_at(t: np.ndarray, near: float, far: float, inverse: bool = False) -> np.ndarray:
    """The depth whose nearness is ``t`` (inverse of nearness inside [near, far])."""
    t = np.asarray(t, dtype=np.float64)
    return 1.0 / (1.0 / far + t * (1.0 / near - 1.0 / far)) if inverse else far - t * (far - near)


def colorize_depth(
    depth: np.ndarray,
    near: float | None = None,
    far: float | None = None,
    inverse: bool = True,
    cmap: int = cv2.COLORMAP_TURBO,
    invalid_color: tuple[int, int, int] = (0, 0, 0),
    legend: bool = True,
) -> np.ndarray:
    """(H, W [+ legend], 3) uint8 RGB of a depth map (meters, 0 / non-finite = invalid).

    near / far (> 0) default to the smallest / largest valid depth. ``inverse`` (default) spaces colors by
    1 / depth: street scenes are mostly near, and a linear scale spends most colors on the few far pixels.
    With ``legend`` a bar with ticks in meters is
    appended on the right, so the output is wider than the map.
    """
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth: expected an (H, W) array in meters, got shape {depth.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    near, far = _depth_range(depth, valid, near, far)
    level = nearness(depth, near, far, inverse)
    level *= 255
    np.rint(level, out=level)
    # Colors by table lookup with one more entry, 256, for invalid pixels: no second pass to paint them.
    lut = np.append(pack_rgb(_colormap_rgb(cmap)), pack_rgb([invalid_color]))
    image = unpack_rgb(np.take(lut, np.where(valid, level, 256).astype(np.uint16)))
    if not legend:
        return image
    return np.hstack([image, _legend(depth.shape[0], near, far, inverse, cmap)])


def depth_colormap_panoptic(
    panoptic_ids: np.ndarray | SegmentRuns,
    table: InstanceDepthTable,
    class_table: ClassTable,
    rgb: np.ndarray | None = None,
    near: float = 2.0,
    far: float = 80.0,
) -> np.ndarray:
    """(H, W, 3) uint8 RGB in the style of Panoptic-DepthLab: things colored by their depth (red near, green,
    blue far) and labeled "class d.d m"; stuff in its class color dimmed; void black; outlines white.

    ``table`` is instance_depth() of the same map. Things show their median depth, which background pixels
    at mask edges do not drag away, and which the RViz labels show too. The fixed default range keeps colors
    comparable across the frames of a stream. With ``rgb`` the colors are blended over the camera image.
    """
    _check_range(near, far)
    runs = SegmentRuns.of(panoptic_ids)
    segments = runs.segments
    void = int(len(segments) > 0 and segments[0] == 0)  # sorted ids: void, when present, comes first
    if not np.array_equal(segments[void:], table.panoptic_id):
        raise ValueError(
            f"table: expected instance_depth() of this map (segments {segments[void:][:8].tolist()}...),"
            f" got one of segments {table.panoptic_id[:8].tolist()}..."
        )

    depth_colored = table.is_thing & (table.valid_count > 0)
    colors = np.rint(class_table.colors[table.class_index] * STUFF_BRIGHTNESS).astype(np.uint8)
    colors[depth_colored] = _near_to_far_colors(table.depth_median[depth_colored], near, far)
    colors = np.vstack([np.zeros((void, 3), np.uint8), colors])
    if rgb is None:
        image = paint_segments(runs, colors)
    else:
        image = overlay_segments(rgb, runs, colors, 1.0 - IMAGE_ALPHA)
    draw_boundaries(image, runs, WHITE)

    h, w = runs.shape
    scale = max(0.35, h / 1000)
    labeled = np.flatnonzero(depth_colored & (table.pixel_count >= MIN_LABEL_FRACTION * h * w))
    for k in labeled:
        x0, y0, x1, y1 = table.bbox[k]
        text = f"{class_table.names[table.class_index[k]]} {table.depth_median[k]:.1f} m"
        put_text(image, text, ((x0 + x1) / 2, (y0 + y1) / 2), scale)
    return image


def _near_to_far_colors(depth: np.ndarray, near: float, far: float) -> np.ndarray:
    """(N, 3) uint8 RGB along the hue circle from red (near) over green to blue (far), full brightness."""
    if depth.size == 0:  # cv2.cvtColor rejects empty images
        return np.zeros((0, 3), np.uint8)
    hue = 120.0 * (1.0 - nearness(depth, near, far))  # OpenCV's 8-bit hue is degrees / 2: 0 red, 60 green, 120 blue
    hsv = np.stack([np.rint(hue), np.full_like(hue, 255), np.full_like(hue, 255)], axis=-1).astype(np.uint8)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]


def _depth_range(depth: np.ndarray, valid: np.ndarray, near: float | None, far: float | None) -> tuple[float, float]:
    """The given range, completed from the valid depths; a constant or empty map gets a 1 m wide range."""
    if near is None or far is None:
        # One masked pass in OpenCV instead of copying the valid depths out.
        lowest, highest = cv2.minMaxLoc(depth, valid.view(np.uint8))[:2] if valid.any() else (1.0, None)
        near = lowest if near is None else near
        if far is None:
            far = highest if highest is not None and highest > near else near + 1.0
    _check_range(near, far)
    return near, far


def _check_range(near: float, far: float) -> None:
    if not 0 < near < far:
        raise ValueError(f"depth range: expected 0 < near < far (meters), got near={near} far={far}")


def _colormap_rgb(cmap: int) -> np.ndarray:
    """(256, 3) uint8 RGB of an OpenCV color map per 8-bit level; level 255 (nearness 1) is the near color."""
    return cv2.cvtColor(cv2.applyColorMap(np.arange(256, dtype=np.uint8)[None], cmap), cv2.COLOR_BGR2RGB)[0]


def _legend(height: int, near: float, far: float, inverse: bool, cmap: int) -> np.ndarray:
    """A (height, width, 3) panel: the color bar (near at the top) and ticks labeled in meters."""
    scale = max(0.35, height / 1000)
    ticks = _round_significant(depth_at(np.linspace(1.0, 0.0, LEGEND_TICKS), near, far, inverse))
    labels = [f"{d:g} m" for d in ticks]
    bar_w = max(12, height // 30)
    pad = max(4, bar_w // 3)
    label_widths = [text_size(label, scale)[0] for label in labels]
    width = bar_w + 4 * pad + max(label_widths)
    panel = np.empty((height, width, 3), np.uint8)
    panel[:] = LEGEND_BACKGROUND
    t_rows = np.linspace(1.0, 0.0, height)[:, None]
    panel[:, pad : pad + bar_w] = _colormap_rgb(cmap)[np.rint(t_rows * 255).astype(np.uint8)]
    tick_rows = np.rint((1.0 - nearness(ticks, near, far, inverse)) * (height - 1)).astype(int)
    for row, label, label_w in zip(tick_rows, labels, label_widths, strict=True):
        panel[row, pad + bar_w : 2 * pad + bar_w] = WHITE
        put_text(panel, label, (3 * pad + bar_w + label_w / 2, row), scale)
    return panel


def _round_significant(values: np.ndarray, digits: int = 2) -> np.ndarray:
    """Values rounded to ``digits`` significant digits, for tick labels that read well."""
    exponent = np.floor(np.log10(np.abs(values)))
    factor = 10.0 ** (digits - 1 - exponent)
    return np.rint(values * factor) / factor
