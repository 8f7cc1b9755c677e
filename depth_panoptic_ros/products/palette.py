"""Panoptic color images: Cityscapes-style class colors, told-apart instances, overlays on the camera image."""

from __future__ import annotations

import cv2
import numpy as np

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.products.canvas import WHITE, check_rgb, pack_rgb, unpack_rgb
from depth_panoptic_ros.products.palette_compiled import blend_runs, paint_pixels
from depth_panoptic_ros.products.segments import SegmentRuns, segment_class_index

INSTANCE_JITTER = 48  # an instance's color stays within its class color +- this, per channel
# Roberts' R3 low-discrepancy sequence (powers of 1/phi_3, phi_3 = 1.2207...): consecutive instance numbers
# land far apart in every channel, so neighboring instances of a class differ visibly.
_R3 = 1.0 / 1.2207440846057596 ** np.arange(1, 4)


def segment_colors(segments: np.ndarray, class_table: ClassTable) -> np.ndarray:
    """(N, 3) uint8 RGB per panoptic id: the class color, varied per instance for things; void black.

    Each channel of instance k sits at R3(k) within [class color - J, class color + J] cut to [0, 255], so
    classes with saturated colors (rider (255, 0, 0)) keep as much spread as the cut range allows.
    Instance 0 (a crowd region of things) and stuff keep the class color.
    """
    segments = np.asarray(segments)
    index = segment_class_index(segments, class_table)
    base = class_table.colors[index].astype(np.float64)
    low, high = np.maximum(base - INSTANCE_JITTER, 0), np.minimum(base + INSTANCE_JITTER, 255)
    instance = segments % class_table.label_divisor
    jittered = low + np.mod(instance[:, None] * _R3, 1.0) * (high - low)
    varied = (class_table.is_thing[index] & (instance > 0))[:, None]
    colors = np.rint(np.where(varied, jittered, base)).astype(np.uint8)
    colors[segments == 0] = 0  # void rows read class index -1 above; they are black
    return colors


def colorize_panoptic(panoptic_ids: np.ndarray | SegmentRuns, class_table: ClassTable) -> np.ndarray:
    """(H, W, 3) uint8 RGB color image of a panoptic map; one color per segment, computed once per segment."""
    runs = SegmentRuns.of(panoptic_ids)
    return paint_segments(runs, segment_colors(runs.segments, class_table))


def paint_segments(runs: SegmentRuns, colors: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB image with colors[k] (N, 3) on the pixels of segment k."""
    return unpack_rgb(runs.paint(pack_rgb(colors)))


def segment_boundaries(panoptic_ids: np.ndarray | SegmentRuns) -> np.ndarray:
    """(H, W) bool, True where the id differs from the right or lower neighbor (one-pixel outlines)."""
    runs = SegmentRuns.of(panoptic_ids)
    edge = np.zeros(runs.shape, bool)
    edge.ravel()[runs.boundary_pixels] = True
    return edge


def draw_boundaries(image: np.ndarray, panoptic_ids: np.ndarray | SegmentRuns, color: tuple[int, int, int]) -> None:
    """Paints the segment outlines of ``panoptic_ids`` into a C-contiguous (H, W, 3) image in place.

    The outline pixels are few and set by flat position (palette_compiled.paint_pixels): a boolean mask over the
    whole image is ~5x slower.
    """
    if not image.flags.c_contiguous or image.dtype != np.uint8 or image.shape[2:] != (3,):
        raise ValueError("image: expected a C-contiguous (H, W, 3) uint8 array to draw the outlines into")
    runs = _runs_of_size(panoptic_ids, image.shape[:2])  # the kernel writes where the outlines say
    paint_pixels(image.reshape(-1), runs.boundary_pixels, np.asarray(color, np.uint8))


def overlay(
    rgb: np.ndarray,
    color: np.ndarray,
    alpha: float = 0.5,
    panoptic_ids: np.ndarray | SegmentRuns | None = None,
    boundary_color: tuple[int, int, int] = WHITE,
) -> np.ndarray:
    """(1 - alpha) * rgb + alpha * color, rounded; with ``panoptic_ids``, segment outlines in ``boundary_color``."""
    rgb = check_rgb("rgb", rgb)
    color = check_rgb("color", color, rgb.shape[:2])
    _check_alpha(alpha)
    out = cv2.addWeighted(rgb, 1.0 - alpha, color, alpha, 0.0)
    if panoptic_ids is not None:
        draw_boundaries(out, _runs_of_size(panoptic_ids, rgb.shape[:2]), boundary_color)
    return out


def overlay_panoptic(
    rgb: np.ndarray,
    panoptic_ids: np.ndarray | SegmentRuns,
    class_table: ClassTable,
    alpha: float = 0.5,
    boundary_color: tuple[int, int, int] = WHITE,
) -> np.ndarray:
    """overlay(rgb, colorize_panoptic(panoptic_ids, class_table), alpha, panoptic_ids, boundary_color), the
    same image made without the color image (overlay_segments)."""
    runs = _runs_of_size(panoptic_ids, check_rgb("rgb", rgb).shape[:2])
    out = overlay_segments(rgb, runs, segment_colors(runs.segments, class_table), alpha)
    draw_boundaries(out, runs, boundary_color)
    return out


def overlay_segments(rgb: np.ndarray, runs: SegmentRuns, colors: np.ndarray, alpha: float) -> np.ndarray:
    """overlay(rgb, paint_segments(runs, colors), alpha), bit for bit, in one pass over the runs
    (palette_compiled.py): the painted image is never made."""
    rgb = np.ascontiguousarray(check_rgb("rgb", rgb, runs.shape))
    _check_alpha(alpha)
    out = np.empty_like(rgb)
    # The weights in float32, as cv2.addWeighted takes them.
    blend_runs(
        rgb.ravel(),
        runs.start,
        runs.length,
        runs.segment,
        np.ascontiguousarray(colors, np.uint8),
        np.float32(1.0 - alpha),
        np.float32(alpha),
        out.ravel(),
    )
    return out


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay alpha: expected a value in [0, 1], got {alpha}")


def _runs_of_size(panoptic_ids: np.ndarray | SegmentRuns, shape: tuple[int, int]) -> SegmentRuns:
    runs = SegmentRuns.of(panoptic_ids)
    if runs.shape != shape:
        raise ValueError(f"panoptic_ids: expected size {shape} (that of rgb), got {runs.shape}")
    return runs
