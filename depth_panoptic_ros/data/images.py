"""Image files as RGB arrays (OpenCV reads BGR; everything in the package is RGB)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; gray images are replicated, alpha dropped, 16-bit scaled down."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"image {path}: no such file")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"image {path}: not a readable image file")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(image, code)


def write_rgb(path: str | Path, rgb: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"cannot write image {path}")
