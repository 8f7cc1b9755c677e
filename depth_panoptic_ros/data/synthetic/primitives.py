"""The solids things and street furniture are built from: yawed boxes and vertical cylinders.

Each answers two questions for the renderer: where along a bundle of rays it is first hit (``intersect``,
vectorized over the rays) and, only for the pixels it wins, the surface coordinates and normal there
(``surface_at``). All coordinates are in the left camera's optical frame (x right, y down, z forward).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import numpy as np

from depth_panoptic_ros.data.synthetic.rays import Dirs

_S_AXIS = np.array([2, 0, 0])  # per box face axis (x, y, z): which local axis runs along the texture's s
_Q_AXIS = np.array([1, 2, 1])  # ... and along q


_CORNER_SIGNS = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1], indexing="ij")).reshape(3, -1).T


def yaw_matrix(yaw: float) -> np.ndarray:
    """Rotation about the (downward) y axis; local z (an object's length) points along the camera's z at yaw 0."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def box_corners(center: np.ndarray, half: np.ndarray, yaw: float) -> np.ndarray:
    """(8, 3) corners of a yawed box."""
    return center + (_CORNER_SIGNS * half) @ yaw_matrix(yaw).T


@dataclass(frozen=True)
class Box:
    center: np.ndarray  # (3,)
    half: np.ndarray  # (3,) half extents along the box's own x (width), y (height), z (length)
    yaw: float
    segment: int  # panoptic id
    surface: int  # row of the scene's surface table

    def corners(self) -> np.ndarray:
        return box_corners(self.center, self.half, self.yaw)

    def intersect(self, origin: np.ndarray, dirs: Dirs) -> np.ndarray:
        """Entry distance along each ray (slab method in the box frame), inf where the ray misses."""
        rot = yaw_matrix(self.yaw)
        o = [float(v) for v in rot.T @ (origin - self.center)]
        c, s = float(rot[0, 0]), float(rot[0, 2])
        dx, dy, dz = dirs
        local = (c * dx - s * dz, dy, s * dx + c * dz)
        with np.errstate(divide="ignore", invalid="ignore"):  # a ray parallel to a slab gives +-inf: still right
            slabs = [((-h - o_i) / d, (h - o_i) / d) for d, o_i, h in zip(local, o, self.half.tolist(), strict=True)]
        near = reduce(np.maximum, (np.minimum(a, b) for a, b in slabs))
        far = reduce(np.minimum, (np.maximum(a, b) for a, b in slabs))
        return np.where((near <= far) & (near > 0), near, np.float32(np.inf))

    def surface_at(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Texture coordinates (s, q) in meters from the face's corner, and the outward normals, at hit points."""
        rot = yaw_matrix(self.yaw)
        local = (points - self.center) @ rot
        axis = np.argmax(np.abs(local) / self.half, axis=1)
        from_corner = local + self.half
        s = np.take_along_axis(from_corner, _S_AXIS[axis, None], axis=1)[:, 0]
        q = np.take_along_axis(from_corner, _Q_AXIS[axis, None], axis=1)[:, 0]
        normal_local = np.zeros_like(local)
        normal_local[np.arange(len(axis)), axis] = np.sign(local[np.arange(len(axis)), axis])
        return s, q, normal_local @ rot.T


@dataclass(frozen=True)
class Cylinder:
    center: np.ndarray  # (3,) center of the axis
    half_height: float
    radius: float
    segment: int
    surface: int

    def corners(self) -> np.ndarray:
        return box_corners(self.center, np.array([self.radius, self.half_height, self.radius]), 0.0)

    def intersect(self, origin: np.ndarray, dirs: Dirs) -> np.ndarray:
        """Entry distance through the side or the cap that faces the origin, inf where the ray misses."""
        ox, oy, oz = (float(v) for v in origin - self.center)
        dx, dy, dz = dirs
        r, hh = self.radius, self.half_height
        a = dx * dx + dz * dz
        b = ox * dx + oz * dz
        c = ox * ox + oz * oz - r * r
        with np.errstate(divide="ignore", invalid="ignore"):
            t_side = (-b - np.sqrt(b * b - a * c)) / a
            y = oy + t_side * dy
            t = np.where((t_side > 0) & (np.abs(y) <= hh), t_side, np.float32(np.inf))
            if abs(oy) > hh:  # the origin is above the top or below the bottom: that cap can be seen
                cap_y = np.copysign(hh, oy)
                t_cap = (cap_y - oy) / dy
                on_cap = (t_cap > 0) & ((ox + t_cap * dx) ** 2 + (oz + t_cap * dz) ** 2 <= r * r)
                t = np.where(on_cap, np.minimum(t, t_cap), t)
        return t

    def surface_at(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(s, q): arc length and height on the side, x and z on a cap; outward normals."""
        local = points - self.center
        radial = np.hypot(local[:, 0], local[:, 2])
        on_cap = np.abs(local[:, 1]) / self.half_height > radial / self.radius
        s = np.where(on_cap, local[:, 0], self.radius * np.arctan2(local[:, 0], local[:, 2]))
        q = np.where(on_cap, local[:, 2], local[:, 1] + self.half_height)
        normal = np.where(
            on_cap[:, None],
            np.stack([np.zeros_like(radial), np.sign(local[:, 1]), np.zeros_like(radial)], axis=1),
            np.stack([local[:, 0], np.zeros_like(radial), local[:, 2]], axis=1) / self.radius,
        )
        return s, q, normal
