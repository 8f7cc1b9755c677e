"""Drawing on RGB images: input checks, legible text labels and the contact sheet of the demo."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from depth_panoptic_ros.products.canvas_compiled import blend_outlined

FONT = cv2.FONT_HERSHEY_SIMPLEX
SHEET_BACKGROUND = (32, 32, 32)
OUTLINE = (0, 0, 0)
WHITE = (255, 255, 255)


def check_rgb(name: str, image: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The image as an (H, W, 3) uint8 array (of size ``shape`` when given), or a ValueError naming it."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{name}: expected an (H, W, 3) uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
    if shape is not None and image.shape[:2] != tuple(shape):
        raise ValueError(f"{name}: expected size {tuple(shape)} (H, W), got {image.shape[:2]}")
    return image


def pack_rgb(colors: np.ndarray) -> np.ndarray:
    """(N,) uint32 words of (N, 3) uint8 RGB colors (the fourth byte zero), for painting with unpack_rgb.

    Full-size color images are painted as one word per pixel and unpacked by OpenCV: numpy copies 4-byte
    items several times faster than 3-byte rows.
    """
    colors = np.asarray(colors, dtype=np.uint8)
    rgbx = np.zeros((len(colors), 4), np.uint8)
    rgbx[:, :3] = colors
    return rgbx.view(np.uint32)[:, 0]


def unpack_rgb(words: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB image of an (H, W) array of pack_rgb words."""
    if words.size == 0:  # cv2.cvtColor rejects empty images
        return np.zeros(words.shape + (3,), np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(words).view(np.uint8).reshape(words.shape + (4,)), cv2.COLOR_RGBA2RGB)


def text_size(text: str, scale: float) -> tuple[int, int]:
    """(width, height) in pixels of ``text`` as put_text draws it, outline and descenders included."""
    (w, h), baseline = cv2.getTextSize(text, FONT, scale, _thickness(scale))
    return w + 2, h + baseline + 2


def put_text(
    image: np.ndarray, text: str, center: tuple[float, float], scale: float, color: tuple[int, int, int] = WHITE
) -> None:
    """Draws ``text`` centered on ``center`` (moved inside the image) with a dark outline, readable on any color.

    The outline is the text stamped at the 8 one-pixel offsets: a thicker stroke would not do, since Hershey
    glyphs advance further with thickness and the outline would drift off the letters. The text is rasterized
    once, as an anti-aliased mask, and blended with its shifted copies in one pass (canvas_compiled.py).
    """
    thickness = _thickness(scale)
    (w, h), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    # min / max rather than np.clip: a few us per call on scalars, of a label's ~100 us
    x = int(min(max(center[0] - w / 2, 1), max(image.shape[1] - w - 1, 1)))
    y = int(min(max(center[1] + h / 2, h + 1), max(image.shape[0] - baseline - 1, h + 1)))
    # Rasterize into a patch around the text box, generous for glyphs beyond it ('|', 'j' at large scales), inside
    # a zero ring of 2 px: the blend reads the mask one pixel around the outline, itself one pixel around the ink.
    margin = thickness + 2 + math.ceil(6 * scale)
    top, left = y - h - margin, x - margin
    coverage = np.zeros((h + baseline + 2 * margin + 4, w + 2 * margin + 4), np.uint8)
    cv2.putText(coverage[2:-2, 2:-2], text, (x - left, y - top), FONT, scale, 255, thickness, cv2.LINE_AA)
    ink_x, ink_y, ink_w, ink_h = cv2.boundingRect(coverage)
    if ink_w == 0:
        return
    # The image pixels the label changes: the ink's box and the outline's pixel around it, cut to the image.
    first_row, first_col = top - 2 + ink_y - 1, left - 2 + ink_x - 1
    rows = slice(max(first_row, 0), min(first_row + ink_h + 2, image.shape[0]))
    cols = slice(max(first_col, 0), min(first_col + ink_w + 2, image.shape[1]))
    box = image[rows, cols]
    # The kernel takes the box as rows of bytes: a view where a row's pixels are contiguous (every image the
    # package makes), else a copy, written back.
    row_bytes = box.reshape(len(box), -1)
    blend_outlined(
        row_bytes,
        coverage,
        rows.start - (top - 2),
        cols.start - (left - 2),
        np.asarray(color, np.float32),
        np.asarray(OUTLINE, np.float32),
    )
    if not np.may_share_memory(row_bytes, box):
        box[:] = row_bytes.reshape(box.shape)


def contact_sheet(images: Sequence[tuple[str, np.ndarray]], columns: int, title_height: int = 28) -> np.ndarray:
    """Titled images tiled row by row into one RGB image; each cell is as large as the largest image.

    Images keep their own size (a depth map with its legend is wider than the input) and sit at the top left
    of their cell, under a title bar of ``title_height`` pixels.
    """
    if not images:
        raise ValueError("contact_sheet: expected at least one (title, image), got none")
    if columns < 1:
        raise ValueError(f"contact_sheet: columns must be >= 1, got {columns}")
    checked = [(title, check_rgb(f"contact_sheet image {title!r}", image)) for title, image in images]
    cell_h = max(image.shape[0] for _, image in checked) + title_height
    cell_w = max(image.shape[1] for _, image in checked)
    rows = -(-len(checked) // columns)
    sheet = np.empty((rows * cell_h, columns * cell_w, 3), np.uint8)
    sheet[:] = SHEET_BACKGROUND
    scale = cv2.getFontScaleFromHeight(FONT, max(title_height // 2, 1))
    for k, (title, image) in enumerate(checked):
        y, x = (k // columns) * cell_h, (k % columns) * cell_w
        put_text(sheet[y : y + title_height, x : x + cell_w], title, (cell_w / 2, title_height / 2), scale)
        sheet[y + title_height : y + title_height + image.shape[0], x : x + image.shape[1]] = image
    return sheet


def _thickness(scale: float) -> int:
    return max(1, round(scale * 1.5))
