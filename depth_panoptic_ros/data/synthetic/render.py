"""Ray casting of a scene: the nearest hit per ray, then colors (camera) or reflectances (LiDAR) from it.

The street (road, sidewalks, facades, the building closing the street) bounds a convex room around the sensors,
so its hit is the nearest of three analytic planes for every ray at once; the solids are then tested only on
the rays of their footprint, each keeping the rays where it is nearer than what was hit so far. Texture is
looked up once at the end, for the surviving hits only. Shading is Lambertian (view independent), so both
stereo views see the same color on the same surface point.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from depth_panoptic_ros.data.synthetic.labels import class_ids
from depth_panoptic_ros.data.synthetic.rays import RayGrid, Region, crop, gather
from depth_panoptic_ros.data.synthetic.scene import Scene
from depth_panoptic_ros.data.synthetic.street import CELL_M, Street
from depth_panoptic_ros.data.synthetic.surfaces import BASE, DECAL, DECAL_REFLECTANCE, REFLECTANCE, texture_and_decal

SUN = np.array([-0.4, -0.8, -0.45]) / np.linalg.norm([-0.4, -0.8, -0.45])  # towards the sun: up, left, behind
AMBIENT = 0.55
SKY_HORIZON = np.array([205.0, 215.0, 230.0], dtype=np.float32)
SKY_ZENITH = np.array([95.0, 145.0, 205.0], dtype=np.float32)


def _shade(normal: np.ndarray) -> np.ndarray:
    return AMBIENT + (1 - AMBIENT) * np.clip(normal @ SUN, 0, None)


@dataclass
class Hits:
    """The nearest hit per ray; t = inf where a ray hits nothing (sky, for a camera)."""

    t: np.ndarray  # float32 distance along the ray (depth for camera rays, range for unit LiDAR rays)
    segment: np.ndarray  # int32 panoptic id
    surface: np.ndarray  # intp row of the scene's surface table
    s: np.ndarray  # float32 surface coordinates in meters, for the texture
    q: np.ndarray
    shade: np.ndarray  # float32 Lambertian shading

    def paint(
        self,
        region: Region,
        mask: np.ndarray,
        t: np.ndarray,
        segment: int,
        surface: int,
        s: np.ndarray,
        q: np.ndarray,
        normal: np.ndarray,
    ) -> None:
        """Writes the hits of one solid at mask (within region)."""
        self.t[region][mask] = t
        self.segment[region][mask] = segment
        self.surface[region][mask] = surface
        self.s[region][mask] = s
        self.q[region][mask] = q
        self.shade[region][mask] = _shade(normal)


def cast(scene: Scene, rays: RayGrid) -> Hits:
    """The nearest hit of every ray of the grid."""
    hits = _street_hits(scene.street, rays)
    for solid in scene.primitives:
        region = rays.footprint(solid.corners())
        if region is None:
            continue
        dirs = crop(rays.dirs, region)
        t = np.broadcast_to(solid.intersect(rays.origin, dirs), hits.t[region].shape)
        nearer = t < hits.t[region]
        if not nearer.any():
            continue
        t = t[nearer]
        s, q, normal = solid.surface_at(rays.origin + t[:, None] * gather(dirs, nearer))
        hits.paint(region, nearer, t, solid.segment, solid.surface, s, q, normal)
    return hits


def _street_hits(street: Street, rays: RayGrid) -> Hits:
    """Where each ray leaves the street: through the road, a facade, the building at its end, or to the sky."""
    ox, oy, oz = (float(v) for v in rays.origin)
    dx, dy, dz = rays.dirs
    h, (road_l, road_r), (fac_l, fac_r) = street.height, street.road, street.facades
    ids, inf = class_ids(), np.float32(np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(dy > 0, (h - oy) / dy, inf)
        t_facade = np.where(dx > 0, (fac_r - ox) / dx, np.where(dx < 0, (fac_l - ox) / dx, inf))
        t_end = np.where(dz > 0, (street.end_z - oz) / dz, inf)
        t_wall = np.minimum(t_facade, t_end)
        ground = t_ground < t_wall
        end = ~ground & (t_end <= t_facade)
        t = np.where(ground, t_ground, t_wall)
        x, y, z = ox + t * dx, oy + t * dy, oz + t * dz
    road = (x >= road_l) & (x <= road_r)
    segment = np.where(road, np.int32(ids["road"] * 1000), np.int32(ids["sidewalk"] * 1000))
    hits = Hits(
        t=t,
        segment=np.where(ground, segment, np.int32(ids["building"] * 1000)),
        surface=np.where(ground, np.where(road, street.road_surface, street.sidewalk_surface), street.end_surface),
        s=np.where(ground | end, x, z),  # road: (x, z); end wall: (x, y); facade: (z, y)
        q=np.where(ground, z, y),
        shade=np.where(ground, _shade(np.array([0.0, -1.0, 0.0])), _shade(np.array([0.0, 0.0, -1.0]))).astype(
            np.float32
        ),
    )
    hits.t[end & (y < h - street.end_height)] = inf
    facade = ~ground & ~end & np.isfinite(t)
    _facades(street, rays, hits, facade, y[facade], z[facade], np.broadcast_to(dx, facade.shape)[facade] > 0)
    sky = ~np.isfinite(hits.t)
    hits.segment[sky], hits.surface[sky], hits.s[sky], hits.q[sky] = ids["sky"] * 1000, 0, 0, 0
    return hits


def _facades(
    street: Street, rays: RayGrid, hits: Hits, facade: np.ndarray, y: np.ndarray, z: np.ndarray, right: np.ndarray
) -> None:
    """The facade block a ray meets, or, above a lower block, the side wall of a taller next one (one block on)."""
    ox, oy, oz = (float(v) for v in rays.origin)
    h = street.height
    cell = _cell_at(street, right, z)
    block = np.take(street.cell_block, cell)
    hits.segment[facade] = np.take(street.block_segment, block)
    hits.surface[facade] = np.take(street.block_surface, block)
    hits.shade[facade] = np.where(right, _shade(np.array([-1.0, 0.0, 0.0])), _shade(np.array([1.0, 0.0, 0.0])))
    over = facade.copy()
    over[facade] = above = y < h - np.take(street.cell_top, cell)
    d, block, right = gather(rays.dirs, over).T, block[above], right[above]
    ahead = d[2] > 0
    z_side = np.where(ahead, street.block_z[block, 1], street.block_z[block, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = ((z_side - oz) / d[2]).astype(np.float32)
        y_side = oy + t_side * d[1]
        neighbor = _cell_at(street, right, z_side + np.where(ahead, 0.5, -0.5) * CELL_M)
        on_side = y_side >= h - np.take(street.cell_top, neighbor)
        hits.s[over] = ox + t_side * d[0]
    block = np.take(street.cell_block, neighbor)
    hits.t[over] = np.where(on_side, t_side, np.float32(np.inf))
    hits.q[over] = y_side
    hits.segment[over] = np.take(street.block_segment, block)
    hits.surface[over] = np.take(street.block_surface, block)
    hits.shade[over] = np.where(ahead, _shade(np.array([0.0, 0.0, -1.0])), _shade(np.array([0.0, 0.0, 1.0])))


def _cell_at(street: Street, right: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Flat index into the (2, n_cells) facade tables of the cell at z on the left (right = False) or right side."""
    n_cells = street.cell_block.shape[1]
    cell = np.clip((z - street.cell_z0) * (1 / CELL_M), 0, n_cells - 1).astype(np.intp)  # truncation = floor here
    return cell + n_cells * right


def surface_look(scene: Scene, hits: Hits) -> tuple[np.ndarray, np.ndarray]:
    """Palette row (2 * surface + 1 on a decal) and texture brightness of every hit."""
    brightness, decal = texture_and_decal(scene.surfaces, hits.surface, hits.s, hits.q)
    return 2 * hits.surface + decal, brightness


@lru_cache(maxsize=2)
def _noise(size: int) -> np.ndarray:
    """Standard normal noise, drawn once per image size: an image takes it from a random offset, far cheaper
    than drawing a million normal numbers per image (values stay i.i.d. within an image)."""
    noise = np.random.default_rng(7).standard_normal(size + 65536, dtype=np.float32)
    noise.flags.writeable = False
    return noise


def render_rgb(scene: Scene, hits: Hits, rays: RayGrid, rng: np.random.Generator, noise: float) -> np.ndarray:
    """(H, W, 3) uint8 RGB of camera hits: albedo x texture x shading, a sky gradient, and sensor noise."""
    albedo, brightness = surface_look(scene, hits)
    palette = scene.surfaces[:, np.r_[BASE, DECAL]].reshape(-1, 3)
    rgb = np.take(palette, albedo, axis=0)  # much faster than fancy indexing
    rgb *= (brightness * hits.shade)[..., None]
    sky = ~np.isfinite(hits.t)
    d = gather(rays.dirs, sky).T
    up = np.clip(-2.5 * d[1] / np.linalg.norm(d, axis=0), 0, 1)[:, None]
    rgb[sky] = SKY_HORIZON + (SKY_ZENITH - SKY_HORIZON) * up
    if noise > 0:
        start = int(rng.integers(65536))
        rgb += np.float32(noise) * _noise(rgb.size)[start : start + rgb.size].reshape(rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def reflectance(scene: Scene, hits: Hits) -> np.ndarray:
    """LiDAR intensity in [0, 1] of each hit: the surface's reflectivity (decals apart) modulated by its texture."""
    albedo, brightness = surface_look(scene, hits)
    table = scene.surfaces[:, [REFLECTANCE, DECAL_REFLECTANCE]].reshape(-1)
    return np.clip(np.take(table, albedo) * brightness, 0, 1)
