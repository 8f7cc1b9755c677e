"""The picture of one KITTI object evaluation: the panoptic overlay with label and detection boxes on top.

Labels: green found, red missed, gray ignored (too small, occluded, truncated, or a neighboring type) or
DontCare. Detections: cyan true positive, magenta false positive, gray ignored or inside a DontCare region.
Label boxes are thick, detection boxes thin; each carries its type and depth (near face for labels, segment
median for detections), in meters.
"""

from __future__ import annotations

import cv2
import numpy as np

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.data.kitti_objects import ObjectLabels
from depth_panoptic_ros.evaluation.kitti_objects import (
    COUNTED,
    DONT_CARE,
    FALSE_POSITIVE,
    IGNORED,
    TRUE_POSITIVE,
    FrameResult,
    near_face_depth,
)
from depth_panoptic_ros.products.canvas import put_text
from depth_panoptic_ros.products.palette import overlay_panoptic

FOUND, MISSED, GRAY = (0, 220, 0), (230, 30, 30), (150, 150, 150)
HIT, FALSE = (0, 220, 255), (255, 0, 255)
_TEXT_SCALE = 0.4


def draw_object_evaluation(
    rgb: np.ndarray,
    panoptic_ids: np.ndarray,
    class_table: ClassTable,
    labels: ObjectLabels,
    result: FrameResult,
    P: np.ndarray,
    difficulty: str = "moderate",
) -> np.ndarray:
    """(H, W, 3) uint8 RGB: the panoptic overlay of ``rgb`` with the boxes of ``result`` at ``difficulty``."""
    image = overlay_panoptic(rgb, panoptic_ids, class_table, 0.4)
    near_face = near_face_depth(labels, P)
    for (_, level), group in result.groups.items():
        if level != difficulty:
            continue
        match = group.match
        for i in np.flatnonzero(match.label_state != -1):
            state = match.label_state[i]
            color = GRAY if state == IGNORED else FOUND if match.label_matched[i] else MISSED
            if state == COUNTED or state == IGNORED:
                _box(image, labels.box[i], color, 2, f"{labels.type[i]} {near_face[i]:.1f}m", above=True)
        detections = group.detections
        for j, state in enumerate(match.detection_state):
            color = HIT if state == TRUE_POSITIVE else FALSE if state == FALSE_POSITIVE else GRAY
            depth = detections.depth[j]
            text = f"{detections.class_name[j]} {depth:.1f}m" if np.isfinite(depth) else detections.class_name[j]
            _box(image, detections.box[j], color, 1, text, above=False)
    for box in labels.box[labels.type == DONT_CARE]:
        _box(image, box, GRAY, 1, "", above=True)
    return image


def _box(image: np.ndarray, box: np.ndarray, color: tuple[int, int, int], thickness: int, text: str, above: bool):
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in np.clip(box, [0, 0, 0, 0], [w - 1, h - 1, w - 1, h - 1]))
    cv2.rectangle(image, (x0, y0), (x1, y1), color, thickness, cv2.LINE_8)
    if text:
        put_text(image, text, ((x0 + x1) / 2, y0 - 7 if above else y1 + 7), _TEXT_SCALE, color)
