"""Surface appearance as one table row per material instance.

A row holds a base color, a procedural texture (a tileable noise image mapped in meters, so that both stereo
views and the LiDAR see the same pattern on the same surface point) and a rectangular "decal" grid (windows,
lane dashes, paving tiles, sign faces). Look-alike instances share rows, which is what makes them look alike.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

# Columns of the surface table.
BASE, DECAL = slice(0, 3), slice(3, 6)  # RGB in 0..255
CONTRAST, TEXELS_PER_M, TEX_OFFSET = 6, 7, slice(8, 10)
PERIOD, DUTY, DECAL_OFFSET = slice(10, 12), slice(12, 14), slice(14, 16)  # decal grid in meters (s, q)
REFLECTANCE, DECAL_REFLECTANCE = 16, 17  # LiDAR reflectivity in 0..1
N_COLUMNS = 18

TILE_SIZE = 1024  # texels: with tens of texels per meter, a pattern repeats only every few tens of meters


class SurfaceBook:
    """Collects the surfaces of one scene while it is sampled; ``table()`` freezes them."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._rows: list[np.ndarray] = []

    def add(
        self,
        base: tuple[float, float, float],
        *,
        contrast: float,
        texels_per_m: float,
        reflectance: float,
        decal: tuple[float, float, float] | None = None,
        period: tuple[float, float] = (1.0, 1.0),
        duty: tuple[float, float] = (0.0, 0.0),
        decal_offset: tuple[float, float] = (0.0, 0.0),
        decal_reflectance: float | None = None,
    ) -> int:
        """Index of a new surface; its texture starts at a random place in the tile so that surfaces differ."""
        row = np.zeros(N_COLUMNS, dtype=np.float32)
        row[BASE] = base
        row[DECAL] = base if decal is None else decal
        row[CONTRAST], row[TEXELS_PER_M] = contrast, texels_per_m
        row[TEX_OFFSET] = self._rng.uniform(0, TILE_SIZE, 2)
        row[PERIOD], row[DUTY], row[DECAL_OFFSET] = period, duty, decal_offset
        row[REFLECTANCE] = reflectance
        row[DECAL_REFLECTANCE] = reflectance if decal_reflectance is None else decal_reflectance
        self._rows.append(row)
        return len(self._rows) - 1

    def table(self) -> np.ndarray:
        return np.stack(self._rows)


def jitter(rng: np.random.Generator, palette: np.ndarray) -> tuple[float, float, float]:
    """A color of the (N, 3) palette, slightly varied so that no two surfaces are exactly alike by chance."""
    return tuple(np.clip(palette[rng.integers(len(palette))] + rng.normal(0, 6, 3), 0, 255))


@lru_cache(maxsize=1)
def noise_tile() -> np.ndarray:
    """A tileable noise image in [0, 1] with detail at every scale (amplitude ~ 1/f^0.6); periodic by construction
    because it is synthesised in Fourier space."""
    rng = np.random.default_rng(20240531)
    freq = np.hypot(*np.meshgrid(np.fft.fftfreq(TILE_SIZE), np.fft.rfftfreq(TILE_SIZE), indexing="ij"))
    spectrum = np.fft.rfft2(rng.standard_normal((TILE_SIZE, TILE_SIZE))) / np.maximum(freq, 1.0 / TILE_SIZE) ** 0.6
    tile = np.fft.irfft2(spectrum, s=(TILE_SIZE, TILE_SIZE))
    tile = (tile - tile.min()) / (tile.max() - tile.min())
    tile = tile.astype(np.float32)
    tile.flags.writeable = False
    return tile


def texture_and_decal(
    table: np.ndarray, surface: np.ndarray, s: np.ndarray, q: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Texture brightness factor and decal flag of each hit from its surface (row of table) and (s, q) in meters.

    All arrays are 2D grids (rows, cols). The texture is sampled bilinearly, so that it is continuous and a
    sub-pixel shift between the stereo views changes it little.
    """

    def column(i: int) -> np.ndarray:
        return np.take(table[:, i], surface)

    scale = column(TEXELS_PER_M)
    u = s * scale + column(TEX_OFFSET.start)
    v = q * scale + column(TEX_OFFSET.start + 1)
    noise = cv2.remap(noise_tile(), u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    brightness = 1 + column(CONTRAST) * (2 * noise - 1)
    cell_s = (s - column(DECAL_OFFSET.start)) / column(PERIOD.start)
    cell_q = (q - column(DECAL_OFFSET.start + 1)) / column(PERIOD.start + 1)
    decal = (cell_s - np.floor(cell_s) < column(DUTY.start)) & (cell_q - np.floor(cell_q) < column(DUTY.start + 1))
    return brightness, decal
