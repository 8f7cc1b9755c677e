"""Ray grids: one ray per pixel (camera) or per beam and azimuth step (LiDAR), cast from one origin.

Directions are kept as three components that broadcast to the grid's shape: a camera's x component varies only
along columns and its y component only along rows, so per-ray arithmetic on them costs a row or a column, not
a frame. A grid also tells which part of itself can see a convex object (``footprint``), so that each object
is intersected only with the rays that may hit it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np

from depth_panoptic_ros.geometry.camera import CameraModel

Region = tuple[slice, slice]
Dirs = tuple[np.ndarray, np.ndarray, np.ndarray]  # x, y, z: float32, 2D, broadcastable to the grid's shape


class RayGrid(Protocol):
    origin: np.ndarray  # (3,) in the left camera's optical frame
    dirs: Dirs

    def footprint(self, corners: np.ndarray) -> Region | None:
        """Rows and columns whose rays may hit the convex hull of corners; None when none can."""
        ...


def crop(dirs: Dirs, region: Region) -> Dirs:
    """The directions of a region of the grid."""
    return tuple(
        d[region[0] if d.shape[0] > 1 else slice(None), region[1] if d.shape[1] > 1 else slice(None)] for d in dirs
    )


def gather(dirs: Dirs, mask: np.ndarray) -> np.ndarray:
    """(N, 3) directions of the rays at mask (a boolean array of the grid's, or a region's, shape)."""
    return np.stack([np.broadcast_to(d, mask.shape)[mask] for d in dirs], axis=1)


@dataclass(frozen=True)
class CameraRays:
    """The rays of a rectified pinhole camera whose optical center is at origin (left camera axes).

    Rays pass through pixel centers (OpenCV convention: integer coordinates) and have z = 1, so t is depth.
    """

    camera: CameraModel
    origin: np.ndarray

    @cached_property
    def dirs(self) -> Dirs:
        c = self.camera
        x = ((np.arange(c.width) - c.cx) / c.fx).astype(np.float32)[None, :]
        y = ((np.arange(c.height) - c.cy) / c.fy).astype(np.float32)[:, None]
        return x, y, np.ones((1, 1), dtype=np.float32)

    def footprint(self, corners: np.ndarray) -> Region | None:
        rel = corners - self.origin
        if np.all(rel[:, 2] <= 1e-3):
            return None
        if np.any(rel[:, 2] <= 1e-3):  # straddles the image plane: its projection is unbounded
            return slice(None), slice(None)
        c = self.camera
        u = c.fx * rel[:, 0] / rel[:, 2] + c.cx
        v = c.fy * rel[:, 1] / rel[:, 2] + c.cy
        cols = slice(max(int(np.floor(u.min())), 0), min(int(np.ceil(u.max())) + 1, c.width))
        rows = slice(max(int(np.floor(v.min())), 0), min(int(np.ceil(v.max())) + 1, c.height))
        if cols.start >= cols.stop or rows.start >= rows.stop:
            return None
        return rows, cols
