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

Both come from one reduction: the maximum per cell of the key ``kind << 32 | panoptic id``, taken over the first
point of every run of consecutive points that share cell, label and panoptic id (the same maximum as over all
points; the clouds' raster order makes the runs long).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.geometry.backproject import PanopticCloud

OCCUPIED, FREE, UNKNOWN = 100, 0, -1
_IGNORED, _DRIVABLE, _STUFF, _THING = 0, 1, 2, 3  # point kinds in increasing priority
_MAX_CLASS_ID = 2**15  # ClassTable ids lie in 1..32767
_ID_BITS = 2**32 - 1  # keys above it have a kind > _IGNORED
_OCCUPANCY_OF_KIND = np.array([UNKNOWN, FREE, OCCUPIED, OCCUPIED], np.int8)
_BLOCK = 16384  # points per BLAS product: 3 x 3 x 16384 lies under OpenBLAS's threading threshold (2^18)


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

    Its work arrays are kept from frame to frame (grown when a larger cloud comes): arrays of a frame's size
    allocated afresh come as fresh pages from the kernel whenever the allocator has handed them back, and
    faulting them in cost more than the computation (~3 ms per 1024x2048 frame here). A lock keeps concurrent
    calls from sharing them.
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
        self._points = _PointBuffers(0)
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
        label, instance = cloud.label.reshape(-1), cloud.instance.reshape(-1)
        with self._lock:
            self._points = self._points.at_least(label.size)
            mapped, col_row, inside, test, is_start, index, key = self._points.views(label.size)
            with np.errstate(invalid="ignore"):  # NaN and infinite points: NaN, outside, cast to anything
                _affine_map(affine.astype(np.float32), cloud.xyz.reshape(-1, 3), out=mapped)
                mapped += offset.astype(np.float32)[:, None]
                col, row, z = mapped
                np.greater_equal(z, cfg.height_range[0], out=inside)
                inside &= np.less_equal(z, cfg.height_range[1], out=test)
                inside &= np.greater_equal(col, 0, out=test)
                inside &= np.less(col, cols, out=test)
                inside &= np.greater_equal(row, 0, out=test)
                inside &= np.less(row, rows, out=test)
                # Inside, coordinates are >= 0 and truncation is their floor; outside they are ignored.
                np.copyto(col_row, mapped[:2], casting="unsafe")
            cell = col_row[1]
            cell *= cols
            cell += col_row[0]
            starts = _run_starts(inside, cell, label, instance, out=is_start, test=test)
            # One point per run: its key kind << 32 | panoptic id (0 for void and ignored points: no observation)
            # and its cell, gathered through col_row[0] (free by now) into the index and key buffers.
            index, key, gathered = index[: starts.size], key[: starts.size], col_row[0, : starts.size]
            np.copyto(index, np.take(label, starts, out=gathered.view(np.uint32), mode="clip"))
            np.take(self._kind_of_id, index, out=key, mode="clip")
            key |= np.take(instance, starts, out=gathered.view(np.uint32), mode="clip")
            key *= key > _ID_BITS
            np.copyto(index, np.take(cell, starts, out=gathered, mode="clip"))
            best = self._best
            best.fill(0)
            np.maximum.at(best, index, key)
            occupancy = _OCCUPANCY_OF_KIND.take(np.right_shift(best, 32, out=self._kind))
            ids = best.astype(np.int32)  # the low 32 bits: the panoptic id (0 where nothing is observed)
        return BevGrid(
            occupancy=occupancy.reshape(rows, cols),
            ids=ids.reshape(rows, cols),
            origin=(cfg.x_range[0], cfg.y_range[0]),
            resolution=cfg.resolution,
        )


def _affine_map(affine: np.ndarray, xyz: np.ndarray, out: np.ndarray) -> None:
    """out (3, n) = affine (3, 3) @ xyz.T, one BLAS product per block of _BLOCK points: OpenBLAS computes a
    product that small on the calling thread. On the whole cloud it splits the work with a worker thread, which
    waits for a core whenever other processes keep them busy: the grid then took 8-9 ms per 1024x2048 frame
    instead of 2.7 ms on this 2-core machine."""
    for start in range(0, len(xyz), _BLOCK):
        np.matmul(affine, xyz[start : start + _BLOCK].T, out=out[:, start : start + _BLOCK])


def _run_starts(
    inside: np.ndarray, cell: np.ndarray, label: np.ndarray, instance: np.ndarray, out: np.ndarray, test: np.ndarray
) -> np.ndarray:
    """Indices of the first points of the runs of consecutive points inside the grid that share cell, label and
    instance: one point stands for its run in the per-cell maximum. Clouds come in raster order, so runs are
    long (~9 points at 1024x2048): the class lookup and maximum.at, the costly steps per point, see few."""
    out[:1] = True
    change, scratch = out[1:], test[1:]
    np.not_equal(cell[1:], cell[:-1], out=change)
    change |= np.not_equal(label[1:], label[:-1], out=scratch)
    change |= np.not_equal(instance[1:], instance[:-1], out=scratch)
    change |= np.not_equal(inside[1:], inside[:-1], out=scratch)
    out &= inside
    return np.flatnonzero(out)


class _PointBuffers:
    """The projector's work arrays for up to ``capacity`` points."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._mapped = np.empty(3 * capacity, np.float32)
        self._col_row = np.empty(2 * capacity, np.int32)
        self._masks = np.empty(3 * capacity, bool)
        self._index = np.empty(capacity, np.intp)
        self._key = np.empty(capacity, np.int64)

    def at_least(self, n: int) -> _PointBuffers:
        return self if n <= self.capacity else _PointBuffers(n)

    def views(self, n: int) -> tuple[np.ndarray, ...]:
        """Contiguous arrays for n points (BLAS needs a contiguous matmul output): mapped (3, n) float32,
        col_row (2, n) int32, three masks (n,) bool, index (n,) intp, key (n,) int64."""
        return (
            self._mapped[: 3 * n].reshape(3, n),
            self._col_row[: 2 * n].reshape(2, n),
            *self._masks[: 3 * n].reshape(3, n),
            self._index[:n],
            self._key[:n],
        )


def top_down(cells: np.ndarray) -> np.ndarray:
    """A (rows along y, columns along x) grid as a picture seen from above: forward up, left on the left."""
    return np.ascontiguousarray(cells.T[::-1, ::-1])


def occupancy_image(occupancy: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 of occupancy values as map_server draws them: occupied black, free white, unknown gray."""
    shade = np.select([occupancy == OCCUPIED, occupancy == FREE], [0, 254], 205).astype(np.uint8)
    return np.repeat(shade[..., None], 3, axis=2)
