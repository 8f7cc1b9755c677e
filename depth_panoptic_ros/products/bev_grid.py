"""Bird's-eye panoptic grid: the 3D panoptic cloud dropped onto cells of the vehicle's ground plane.

The grid lies in a ground frame (x forward, y left, z up from the ground, e.g. ``base_link``) and uses the cell
layout of nav_msgs/OccupancyGrid: row i, column j covers x in origin_x + [j, j + 1) * resolution and
y in origin_y + [i, i + 1) * resolution. Only points inside the height band count (below it: noise under the
road; above it: overhangs a vehicle passes under, such as canopies, and the sky).

Per cell, from the labeled points in it:
* occupancy 100 when a thing or a non-drivable stuff class (every class but the drivable ones — road,
  parking — and the ignored ones — sky) is observed there, else 0 when drivable ground is observed, else -1
  (unobserved; void points are not observations);
* panoptic id: the largest panoptic id of the cell's highest-priority kind (thing > non-drivable stuff >
  drivable), 0 where the cell holds no labeled point.

Both come from one reduction: the maximum per cell of the key ``kind << 32 | panoptic id`` over the cell's
points, in one compiled walk over the cloud (bev_grid_compiled.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.geometry.backproject import PanopticCloud
from depth_panoptic_ros.products.bev_grid_compiled import cell_keys

OCCUPIED, FREE, UNKNOWN = 100, 0, -1
_IGNORED, _DRIVABLE, _STUFF, _THING = 0, 1, 2, 3  # point kinds in increasing priority
_MAX_CLASS_ID = 2**15  # ClassTable ids lie in 1..32767
_OCCUPANCY_OF_KIND = np.array([UNKNOWN, FREE, OCCUPIED, OCCUPIED], np.int8)


@dataclass(frozen=True)
class GridConfig:
    """Extent in meters of the ground frame (default 60 m ahead x 40 m wide, 0.2 m cells), the height band
    of points that count, and which class names are drivable ground or ignored (names the model's class
    table lacks are skipped)."""

    resolution: float = 0.2
    x_range: tuple[float, float] = (0.0, 60.0)
    y_range: tuple[float, float] = (-20.0, 20.0)
    height_range: tuple[float, float] = (-0.5, 3.0)
    drivable_classes: tuple[str, ...] = ("road", "parking")
    ignored_classes: tuple[str, ...] = ("sky",)

    def __post_init__(self) -> None:
        if not self.resolution > 0:
            raise ValueError(f"grid resolution must be > 0 m, got {self.resolution!r}")
        for name in ("x_range", "y_range", "height_range"):
            low, high = getattr(self, name)
            if not low < high:
                raise ValueError(f"grid {name} must be (low, high) with low < high, got {getattr(self, name)}")
        width, height = self.shape[::-1]
        if not 0 < width * height <= 2**26:
            raise ValueError(f"grid of {width} x {height} cells: expected 1 to 2^26 cells")

    @property
    def shape(self) -> tuple[int, int]:
        """(rows along y, columns along x)."""
        rows = round((self.y_range[1] - self.y_range[0]) / self.resolution)
        cols = round((self.x_range[1] - self.x_range[0]) / self.resolution)
        return rows, cols


@dataclass
class BevGrid:
    """occupancy (rows, cols) int8 in {100, 0, -1}; ids (rows, cols) int32 panoptic ids (0 = none); origin:
    (x, y) meters of the corner of cell (0, 0) in the ground frame; resolution: meters per cell."""

    occupancy: np.ndarray
    ids: np.ndarray
    origin: tuple[float, float]
    resolution: float


class BevProjector:
    """GridConfig + class table -> a callable (cloud, ground_T_camera) -> BevGrid; the class kinds are
    looked up once here, not per frame.

    Its per-cell work arrays are kept from frame to frame: arrays allocated afresh come as fresh pages from the
    kernel whenever the allocator has handed them back, and faulting them in can cost more than the computation.
    A lock keeps concurrent calls from sharing them.
    """

    def __init__(self, config: GridConfig, class_table: ClassTable) -> None:
        self.config = config
        kinds = np.where(class_table.is_thing, _THING, _STUFF).astype(np.int64)
        names = class_table.names
        kinds[[i for i, n in enumerate(names) if n in config.drivable_classes]] = _DRIVABLE
        kinds[[i for i, n in enumerate(names) if n in config.ignored_classes]] = _IGNORED
        # class id -> kind << 32; void, ids outside the table and (clipped) ids beyond the last slot: ignored
        self._kind_of_id = np.zeros(_MAX_CLASS_ID + 1, np.int64)
        self._kind_of_id[class_table.ids] = kinds << 32
        rows, cols = config.shape
        self._best, self._kind = np.empty(rows * cols, np.int64), np.empty(rows * cols, np.int64)
        self._lock = threading.Lock()

    def __call__(self, cloud: PanopticCloud, ground_T_camera: np.ndarray) -> BevGrid:
        """The grid of a cloud in the camera's optical frame; ground_T_camera (4, 4) maps camera points into
        the ground frame. Invalid (NaN) points of an organized cloud are never inside the grid."""
        transform = np.asarray(ground_T_camera, dtype=np.float64)
        if transform.shape != (4, 4) or not np.isfinite(transform).all():
            raise ValueError(f"ground_T_camera must be a finite 4x4 matrix, got shape {transform.shape}")
        cfg = self.config
        rows, cols = cfg.shape
        scale = 1.0 / cfg.resolution
        # Rotation, translation, origin and resolution folded into one affine map to (column, row, height).
        offset = np.array([transform[0, 3] - cfg.x_range[0], transform[1, 3] - cfg.y_range[0], transform[2, 3]])
        affine = transform[:3, :3] * np.array([[scale], [scale], [1.0]])
        offset = offset * np.array([scale, scale, 1.0])
        with self._lock:
            best = self._best
            cell_keys(
                cloud.xyz.reshape(-1, 3),
                cloud.label.reshape(-1),
                cloud.instance.reshape(-1),
                affine.astype(np.float32),
                offset.astype(np.float32),
                np.float32(cfg.height_range[0]),
                np.float32(cfg.height_range[1]),
                rows,
                cols,
                self._kind_of_id,
                best,
            )
            occupancy = _OCCUPANCY_OF_KIND.take(np.right_shift(best, 32, out=self._kind))
            ids = best.astype(np.int32)  # the low 32 bits: the panoptic id (0 where nothing is observed)
        return BevGrid(
            occupancy=occupancy.reshape(rows, cols),
            ids=ids.reshape(rows, cols),
            origin=(cfg.x_range[0], cfg.y_range[0]),
            resolution=cfg.resolution,
        )


def top_down(cells: np.ndarray) -> np.ndarray:
    """A (rows along y, columns along x) grid as a picture seen from above: forward up, left on the left."""
    return np.ascontiguousarray(cells.T[::-1, ::-1])


def occupancy_image(occupancy: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 of occupancy values as map_server draws them: occupied black, free white, unknown gray."""
    shade = np.select([occupancy == OCCUPIED, occupancy == FREE], [0, 254], 205).astype(np.uint8)
    return np.repeat(shade[..., None], 3, axis=2)
