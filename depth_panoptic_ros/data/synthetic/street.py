"""The static part of a scene: a straight road with sidewalks between two rows of facades, closed at its end.

The street is a convex room around the sensors (ground, two facade planes, a building across its end), which
is what lets the renderer find its hit per ray with a few plane tests. Facades are blocks of buildings (with
windows) and vegetation (with a ragged top), tabulated per short cell along z.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_panoptic_ros.data.synthetic.labels import class_ids
from depth_panoptic_ros.data.synthetic.surfaces import SurfaceBook, jitter

CELL_M = 0.05  # facades are tabulated in cells along z, so that a hit finds its block and height by one lookup
BEHIND_M = 130.0  # the street extends this far behind the camera, beyond the LiDAR's range

_FACADE_COLORS = np.array(
    [(200, 190, 170), (170, 150, 130), (150, 80, 60), (210, 210, 205), (120, 120, 125), (190, 160, 110)], dtype=float
)
_FOLIAGE_COLORS = np.array([(70, 110, 40), (50, 90, 45), (95, 120, 50)], dtype=float)


@dataclass(frozen=True)
class Street:
    """The static frame of the scene; facades are blocks (building or vegetation) of whole cells along z."""

    height: float  # the road plane is y = height
    road: tuple[float, float]  # x of the left and right road edge
    facades: tuple[float, float]  # x of the left and right facade line
    end_z: float  # the street ends at a building across it at this z
    end_height: float
    end_surface: int
    road_surface: int
    sidewalk_surface: int
    cell_z0: float  # the first facade cell starts here
    cell_block: np.ndarray  # (2, n_cells) block of each cell, left side then right side
    cell_top: np.ndarray  # (2, n_cells) float32 height of the facade above the road
    block_z: np.ndarray  # (B, 2) z where each block starts and ends
    block_surface: np.ndarray  # (B,)
    block_segment: np.ndarray  # (B,) panoptic id


def sample_street(rng: np.random.Generator, book: SurfaceBook, height: float) -> Street:
    """A street for a camera `height` meters above the road, which runs along z with the camera in a lane."""
    ids = class_ids()
    n_lanes, lane = int(rng.integers(2, 5)), rng.uniform(3.0, 3.6)
    road_l = -(rng.integers(n_lanes) + 0.5) * lane + rng.uniform(-0.4, 0.4)
    road_r = road_l + n_lanes * lane
    facades = (road_l - rng.uniform(2.5, 6.0), road_r + rng.uniform(2.5, 6.0))
    road = book.add(
        (85, 85, 88),
        contrast=0.3,
        texels_per_m=40,
        reflectance=0.15,
        decal=(225, 225, 220),
        period=(lane, 9.0),
        duty=(0.15 / lane, 1 / 3),
        decal_offset=(road_l - 0.075, rng.uniform(0, 9)),
        decal_reflectance=0.6,
    )
    tile = rng.uniform(0.4, 0.8)
    paving = rng.uniform(150, 185)
    sidewalk = book.add(
        (120, 118, 115),
        contrast=0.2,
        texels_per_m=40,
        reflectance=0.25,
        decal=(paving, paving, paving - 5),
        period=(tile, tile),
        duty=(0.94, 0.94),
    )
    end_z = rng.uniform(70.0, 150.0)
    n_cells = int(np.ceil((end_z + BEHIND_M) / CELL_M)) + 1
    tops, waves, surfaces, segments, spans = [], [], [], [], []
    cell_block = np.empty((2, n_cells), dtype=np.int64)
    for side in range(2):
        cell = 0
        while cell < n_cells:
            length = int(rng.integers(8, 31) / CELL_M)
            cell_block[side, cell : cell + length] = len(tops)
            spans.append((cell, cell + length))
            cell += length
            if rng.random() < 0.75:
                tops.append(rng.uniform(6.0, 25.0))
                waves.append(0.0)
                surfaces.append(_facade(rng, book))
                segments.append(ids["building"] * 1000)
            else:  # above both sensors, so a ray that passes over the top goes up to the sky
                tops.append(rng.uniform(4.0, 8.0))
                waves.append(rng.uniform(0.3, 0.8))
                color = jitter(rng, _FOLIAGE_COLORS)
                surfaces.append(book.add(color, contrast=0.5, texels_per_m=15, reflectance=0.35))
                segments.append(ids["vegetation"] * 1000)
    z = -BEHIND_M + CELL_M * (np.arange(n_cells) + 0.5)
    ragged = np.sin(1.3 * z + cell_block) + 0.4 * np.sin(4.1 * z)  # a tree line rather than a hedge
    return Street(
        height=float(height),
        road=(float(road_l), float(road_r)),
        facades=(float(facades[0]), float(facades[1])),
        end_z=float(end_z),
        end_height=float(rng.uniform(8.0, 30.0)),
        end_surface=_facade(rng, book),
        road_surface=road,
        sidewalk_surface=sidewalk,
        cell_z0=-BEHIND_M,
        cell_block=cell_block,
        cell_top=(np.array(tops)[cell_block] + np.array(waves)[cell_block] * ragged).astype(np.float32),
        block_z=-BEHIND_M + CELL_M * np.array(spans, dtype=float),
        block_surface=np.array(surfaces),
        block_segment=np.array(segments, dtype=np.int32),
    )


def _facade(rng: np.random.Generator, book: SurfaceBook) -> int:
    """A building wall with a grid of windows."""
    return book.add(
        jitter(rng, _FACADE_COLORS),
        contrast=0.2,
        texels_per_m=20,
        reflectance=0.3,
        decal=tuple(rng.uniform(40, 80, 3)),
        period=(rng.uniform(2.5, 4.0), rng.uniform(2.8, 3.6)),
        duty=(rng.uniform(0.35, 0.55), rng.uniform(0.4, 0.55)),
        decal_offset=tuple(rng.uniform(0, 3, 2)),
        decal_reflectance=0.1,
    )
