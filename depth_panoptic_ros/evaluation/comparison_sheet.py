"""Side-by-side panoptic overlays of several models on the same frames: the before/after pictures of a model card.

One row per frame: the camera image, then each model's panoptic overlay (class colors, segment outlines),
every cell scaled by the same factor so that a sheet of full KITTI frames stays a reasonable file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from depth_panoptic_ros.frame import SensorFrame
from depth_panoptic_ros.pipeline import Pipeline
from depth_panoptic_ros.products.canvas import contact_sheet
from depth_panoptic_ros.products.palette import overlay_panoptic


def comparison_sheet(
    frames: Iterable[tuple[str, SensorFrame]], pipelines: Sequence[tuple[str, Pipeline]], scale: float = 0.5
) -> np.ndarray:
    """(H, W, 3) uint8 RGB sheet: per frame, the input and one overlay per (name, pipeline); titles name both."""
    if not pipelines or any(p.model is None for _, p in pipelines):
        raise ValueError("comparison_sheet: expected one or more pipelines, each with a model")
    if not 0 < scale <= 1:
        raise ValueError(f"comparison_sheet: scale must lie in (0, 1], got {scale}")
    cells = []
    for frame_title, frame in frames:
        cells.append((frame_title, _scaled(frame.rgb, scale)))
        for name, pipeline in pipelines:
            ids = pipeline.run(frame, outputs={"panoptic"}).panoptic.ids
            image = overlay_panoptic(frame.rgb, ids, pipeline.class_table)
            cells.append((f"{name}: {frame_title}", _scaled(image, scale)))
    return contact_sheet(cells, columns=len(pipelines) + 1)


def _scaled(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1:
        return image
    size = (max(round(image.shape[1] * scale), 1), max(round(image.shape[0] * scale), 1))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
