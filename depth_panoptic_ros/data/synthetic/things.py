"""Things (cars, trucks, persons, riders on bicycles) as composites of boxes and cylinders, and their placement
together with the street furniture (poles, signs, trees).

A model is the shape and looks of one thing; placing one model twice gives a look-alike pair. Placement keeps
objects apart on the ground and things in front of the camera, and puts nothing in front of a look-alike pair,
so that both members of a pair stay visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_panoptic_ros.data.synthetic.labels import class_ids
from depth_panoptic_ros.data.synthetic.primitives import Box, Cylinder, box_corners, yaw_matrix
from depth_panoptic_ros.data.synthetic.street import Street
from depth_panoptic_ros.data.synthetic.surfaces import SurfaceBook, jitter
from depth_panoptic_ros.geometry.camera import CameraModel

MIN_THING_DEPTH_M = 3.5  # no part of a thing comes nearer to the camera plane than this

_CAR_COLORS = np.array(
    [
        (225, 225, 225),
        (30, 30, 32),
        (170, 172, 175),
        (100, 100, 105),
        (160, 20, 25),
        (30, 50, 130),
        (30, 70, 50),
        (220, 180, 40),
        (190, 170, 140),
    ],
    dtype=float,
)
_CARGO_COLORS = np.array([(230, 230, 225), (200, 190, 170), (120, 120, 125), (40, 90, 150)], dtype=float)
_CLOTH_COLORS = np.array(
    [(40, 40, 45), (30, 40, 90), (150, 30, 30), (220, 220, 215), (90, 110, 60), (120, 95, 70), (200, 150, 40)],
    dtype=float,
)
_SKIN_COLORS = np.array([(230, 190, 160), (190, 140, 100), (120, 80, 55)], dtype=float)
_SIGN_COLORS = np.array([(200, 30, 30), (30, 70, 180), (230, 190, 20)], dtype=float)


@dataclass(frozen=True)
class Instance:
    """A thing's 3D bounding box (center, half extents along its width, height, length, yaw) and panoptic id."""

    segment: int
    center: np.ndarray
    half: np.ndarray
    yaw: float


@dataclass(frozen=True)
class _Part:
    solid: type[Box] | type[Cylinder]
    center: np.ndarray  # in the model frame: on the ground at the origin, y up negative, length along z
    half: np.ndarray  # box half extents, or (radius, half height, radius)
    surface: int


@dataclass(frozen=True)
class _Model:
    """The shape and looks of one thing; placing a model twice gives two look-alike instances."""

    class_name: str
    parts: tuple[_Part, ...]

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lows = np.array([p.center - p.half for p in self.parts])
        highs = np.array([p.center + p.half for p in self.parts])
        return lows.min(axis=0), highs.max(axis=0)


def _part(
    solid: type[Box] | type[Cylinder],
    width: float,
    bottom: float,
    top: float,
    length: float,
    surface: int,
    z: float = 0.0,
) -> _Part:
    """A part from its size and the heights of its bottom and top above the ground."""
    return _Part(solid, np.array([0.0, -(bottom + top) / 2, z]), np.array([width, top - bottom, length]) / 2, surface)


class ThingPlacer:
    """Places objects one at a time, refusing collisions and anything that would hide a look-alike pair."""

    def __init__(self, rng: np.random.Generator, camera: CameraModel, street: Street, book: SurfaceBook) -> None:
        self.rng, self.camera, self.street, self.book = rng, camera, street, book
        self.primitives: list[Box | Cylinder] = []
        self.instances: list[Instance] = []
        self.occupied: list[tuple[float, float, float]] = []  # (x, z, radius) footprints on the ground
        self.protected: list[tuple[np.ndarray, float]] = []  # (image box, farthest depth) of look-alikes
        self.next_instance: dict[str, int] = {}
        self.glass = book.add((35, 45, 55), contrast=0.1, texels_per_m=20, reflectance=0.05)
        self.tire = book.add((28, 28, 30), contrast=0.2, texels_per_m=40, reflectance=0.05)
        self.pole = book.add((130, 132, 135), contrast=0.1, texels_per_m=40, reflectance=0.3)

    # -- models ---------------------------------------------------------------------------------------------
    def model(self, class_name: str) -> _Model:
        """A new random shape and look for a thing of the class (its surfaces are added to the book)."""
        rng, add = self.rng, self.book.add
        if class_name == "car":
            length, width, height = rng.uniform(3.8, 4.8), rng.uniform(1.65, 1.9), rng.uniform(1.4, 1.6)
            paint = add(jitter(rng, _CAR_COLORS), contrast=0.1, texels_per_m=20, reflectance=0.5)
            axle = length / 2 - 0.75
            parts = (
                _part(Box, width, 0.28, 0.95, length, paint),
                _part(Box, width - 0.16, 0.95, height, 0.55 * length, self.glass, z=-0.05 * length),
                _part(Box, width + 0.04, 0.0, 0.66, 0.66, self.tire, z=axle),
                _part(Box, width + 0.04, 0.0, 0.66, 0.66, self.tire, z=-axle),
            )
        elif class_name == "truck":
            length, width, height = rng.uniform(6.0, 9.0), rng.uniform(2.3, 2.5), rng.uniform(2.9, 3.6)
            paint = add(jitter(rng, _CAR_COLORS), contrast=0.1, texels_per_m=20, reflectance=0.5)
            cargo = add(jitter(rng, _CARGO_COLORS), contrast=0.15, texels_per_m=20, reflectance=0.5)
            cab_z = length / 2 - 1.0
            parts = (
                _part(Box, width, 0.5, height - 1.4, 2.0, paint, z=cab_z),
                _part(Box, width - 0.1, height - 1.4, height - 0.5, 1.9, self.glass, z=cab_z),
                _part(Box, width, 0.6, height, length - 2.1, cargo, z=-1.05),
            ) + tuple(
                _part(Box, width + 0.04, 0.0, 1.0, 1.0, self.tire, z=z)
                for z in (length / 2 - 1.2, -length / 2 + 1.0, -length / 2 + 2.2)
            )
        elif class_name in ("person", "rider"):
            radius = rng.uniform(0.17, 0.23)
            trousers = add(jitter(rng, _CLOTH_COLORS), contrast=0.3, texels_per_m=50, reflectance=0.25)
            shirt = add(jitter(rng, _CLOTH_COLORS), contrast=0.3, texels_per_m=50, reflectance=0.25)
            skin = add(jitter(rng, _SKIN_COLORS), contrast=0.15, texels_per_m=50, reflectance=0.3)
            if class_name == "person":
                height = rng.uniform(1.55, 1.95)
                levels = (0.0, 0.47 * height, 0.85 * height, height)
            else:  # seated on a bicycle: legs from the pedals, torso above the saddle
                levels = (0.55, 1.05, 1.52, rng.uniform(1.72, 1.8))
            parts = (
                _part(Cylinder, 1.6 * radius, levels[0], levels[1], 1.6 * radius, trousers),
                _part(Cylinder, 2 * radius, levels[1], levels[2], 2 * radius, shirt),
                _part(Cylinder, 0.9 * radius, levels[2], levels[3], 0.9 * radius, skin),
            )
        elif class_name == "bicycle":
            frame = add(jitter(rng, _CAR_COLORS), contrast=0.1, texels_per_m=40, reflectance=0.4)
            parts = (
                _part(Box, 0.06, 0.0, 0.66, 0.66, self.tire, z=0.52),
                _part(Box, 0.06, 0.0, 0.66, 0.66, self.tire, z=-0.52),
                _part(Box, 0.08, 0.45, 0.9, 1.1, frame),
            )
        else:
            raise ValueError(f"no synthetic model for class {class_name!r}")
        return _Model(class_name, parts)

    # -- placement ------------------------------------------------------------------------------------------
    def corners(self, models: list[_Model], x: float, z: float, yaw: float) -> np.ndarray:
        """Corners of the models' 3D boxes at a ground pose."""
        ground = np.array([x, self.street.height, z])
        rot = yaw_matrix(yaw)
        return np.concatenate(
            [
                box_corners(rot @ ((low + high) / 2) + ground, (high - low) / 2, yaw)
                for low, high in (m.bounds for m in models)
            ]
        )

    def image_box(self, corners: np.ndarray) -> np.ndarray:
        """(u0, v0, u1, v1) of the projected corners (all in front of the camera)."""
        c = self.camera
        u = c.fx * corners[:, 0] / corners[:, 2] + c.cx
        v = c.fy * corners[:, 1] / corners[:, 2] + c.cy
        return np.array([u.min(), v.min(), u.max(), v.max()])

    def fits(self, corners: np.ndarray, x: float, z: float) -> bool:
        """Free ground, in front of the camera, and not in front of a protected look-alike."""
        if corners[:, 2].min() < MIN_THING_DEPTH_M:
            return False
        radius = _radius(corners, x, z)
        if any(np.hypot(x - ox, z - oz) < radius + r + 0.2 for ox, oz, r in self.occupied):
            return False
        return not self.hides_protected(corners)

    def hides_protected(self, corners: np.ndarray) -> bool:
        if corners[:, 2].min() <= 0.1:  # beside or behind the camera: it cannot hide anything in the image
            return False
        box, near = self.image_box(corners), corners[:, 2].min()
        return any(
            near < far and box[0] < pb[2] and pb[0] < box[2] and box[1] < pb[3] and pb[1] < box[3]
            for pb, far in self.protected
        )

    def place(self, models: list[_Model], x: float, z: float, yaw: float) -> list[int]:
        """Adds the models at one ground pose (a rider and its bicycle share one); returns their panoptic ids."""
        rot, ground = yaw_matrix(yaw), np.array([x, self.street.height, z])
        segments = []
        for model in models:
            instance = self.next_instance.get(model.class_name, 1)
            self.next_instance[model.class_name] = instance + 1
            segment = class_ids()[model.class_name] * 1000 + instance
            for p in model.parts:
                center = rot @ p.center + ground
                if p.solid is Box:
                    self.primitives.append(Box(center, p.half, yaw, segment, p.surface))
                else:
                    self.primitives.append(Cylinder(center, float(p.half[1]), float(p.half[0]), segment, p.surface))
            low, high = model.bounds
            self.instances.append(Instance(segment, rot @ ((low + high) / 2) + ground, (high - low) / 2, yaw))
            segments.append(segment)
        self.occupied.append((x, z, _radius(self.corners(models, x, z, yaw), x, z)))
        return segments

    # -- where things go --------------------------------------------------------------------------------------
    def lateral(self, class_name: str, half_width: float) -> float:
        """A random x for the class: vehicles in a lane, riders near a curb, pedestrians mostly on a sidewalk."""
        (road_l, road_r), (fac_l, fac_r) = self.street.road, self.street.facades
        rng = self.rng
        if class_name in ("car", "truck"):
            return rng.uniform(road_l + half_width + 0.2, road_r - half_width - 0.2)
        if class_name == "rider":
            edge = road_l + 0.9 if rng.random() < 0.5 else road_r - 0.9
            return edge + rng.uniform(-0.4, 0.4)
        if rng.random() < 0.15:  # a pedestrian crossing
            return rng.uniform(road_l, road_r)
        if rng.random() < 0.5:
            return rng.uniform(fac_l + 0.3 + half_width, road_l - 0.3 - half_width)
        return rng.uniform(road_r + 0.3 + half_width, fac_r - 0.3 - half_width)

    def allowed(self, class_name: str, x: float, half_width: float) -> bool:
        """Whether x keeps the thing where its class belongs (vehicles on the road, pedestrians off the facades)."""
        (road_l, road_r), (fac_l, fac_r) = self.street.road, self.street.facades
        low, high = (road_l, road_r) if class_name in ("car", "truck", "rider") else (fac_l + 0.3, fac_r - 0.3)
        return low + half_width <= x <= high - half_width

    def heading(self, class_name: str, x: float) -> float:
        """Vehicles keep right (oncoming left of the road's middle); pedestrians and a few vehicles face anywhere."""
        rng = self.rng
        if class_name == "person" or rng.random() < 0.1:
            return rng.uniform(0, 2 * np.pi)
        return (0.0 if x > sum(self.street.road) / 2 - 1.0 else np.pi) + rng.normal(0, 0.08)

    def look_alike_pair(self, same_depth: bool, min_gap: float) -> np.ndarray | None:
        """Two placements of one model: overlapping in the image min_gap+ meters apart in depth, or side by side."""
        rng = self.rng
        for _ in range(30):
            model = self.model("car" if rng.random() < 0.7 else "person")
            name, (_, high) = model.class_name, model.bounds
            half_width = float(np.hypot(high[0], high[2])) if name == "person" else float(high[0])
            x1 = self.lateral(name, half_width)
            yaw = self.heading(name, x1)
            z1 = rng.uniform(8.0, 30.0) if same_depth else rng.uniform(7.0, 22.0)
            corners1 = self.corners([model], x1, z1, yaw)
            if same_depth:
                z2 = z1
                extent = corners1[:, 0].max() - corners1[:, 0].min()
                gap = rng.uniform(0.15, 0.6) if name == "car" else rng.uniform(0.05, 0.3)
                x2 = x1 + rng.choice([-1.0, 1.0]) * (extent + gap)
            else:
                z2 = z1 + rng.uniform(min_gap, min_gap + 10.0)
                x2 = self._overlapping_x(model, corners1, x1, z2, yaw, rng.uniform(0.3, 0.6), rng.choice([-1, 1]))
            corners2 = self.corners([model], x2, z2, yaw)
            apart = same_depth or np.hypot(x2 - x1, z2 - z1) >= 2 * _radius(corners1, x1, z1) + 0.2
            boxes = [self.image_box(c) for c in (corners1, corners2)]
            inside = all(b[0] >= 0 and b[2] <= self.camera.width - 1 for b in boxes)
            if not (apart and inside and self.allowed(name, x1, half_width) and self.allowed(name, x2, half_width)):
                continue
            if not (self.fits(corners1, x1, z1) and self.fits(corners2, x2, z2)):
                continue
            pair = self.place([model], x1, z1, yaw) + self.place([model], x2, z2, yaw)
            self.protected += [(box, float(c[:, 2].max())) for box, c in zip(boxes, (corners1, corners2), strict=True)]
            return np.array(pair, dtype=np.int32)
        return None

    def _overlapping_x(
        self, model: _Model, corners1: np.ndarray, x1: float, z2: float, yaw: float, overlap: float, side: int
    ) -> float:
        """Lateral position at depth z2 where the image box covers `overlap` of its width with the first one."""
        front = self.image_box(corners1)
        x2 = x1
        for _ in range(3):  # the image width barely depends on x, so this converges at once
            back = self.image_box(self.corners([model], x2, z2, yaw))
            width = back[2] - back[0]
            left = front[2] - overlap * width if side > 0 else front[0] + overlap * width - width
            x2 += (left - back[0]) * z2 / self.camera.fx
        return x2

    def furniture(self) -> None:
        """Poles (some carrying a sign) at the curbs and trees on the sidewalks."""
        rng, (road_l, road_r), (fac_l, fac_r) = self.rng, self.street.road, self.street.facades
        h, ids = self.street.height, class_ids()
        for _ in range(rng.integers(1, 7)):
            x = road_l - rng.uniform(0.4, 0.8) if rng.random() < 0.5 else road_r + rng.uniform(0.4, 0.8)
            z, top, radius = rng.uniform(4.0, 70.0), rng.uniform(4.0, 8.0), rng.uniform(0.06, 0.1)
            pole = Cylinder(np.array([x, h - top / 2, z]), top / 2, radius, ids["pole"] * 1000, self.pole)
            if self._crowded(x, z, radius) or self.hides_protected(pole.corners()):
                continue
            self.primitives.append(pole)
            self.occupied.append((x, z, radius))
            if rng.random() < 0.6:
                half = rng.uniform(0.3, 0.4, 2)
                sign = self.book.add(
                    (235, 235, 235),
                    contrast=0.1,
                    texels_per_m=40,
                    reflectance=0.9,
                    decal=jitter(rng, _SIGN_COLORS),
                    period=tuple(2 * half),
                    duty=(0.82, 0.82),
                    decal_offset=tuple(0.18 * half),
                )
                center = np.array([x, h - top + 0.25 + half[1], z - radius - 0.03])
                plate = Box(center, np.array([half[0], half[1], 0.02]), 0.0, ids["traffic sign"] * 1000, sign)
                if not self.hides_protected(plate.corners()):
                    self.primitives.append(plate)
        foliage = self.book.add((70, 110, 40), contrast=0.5, texels_per_m=15, reflectance=0.35)
        bark = self.book.add((80, 60, 45), contrast=0.3, texels_per_m=40, reflectance=0.3)
        for _ in range(rng.integers(0, 5)):
            inner, outer = (road_l, fac_l) if rng.random() < 0.5 else (road_r, fac_r)
            x, z = (inner + outer) / 2, rng.uniform(5.0, 70.0)
            crown = min(rng.uniform(0.9, 1.6), abs(outer - inner) / 2 + 0.5)
            bottom, top = rng.uniform(2.2, 3.0), rng.uniform(4.5, 7.0)
            trunk = Cylinder(
                np.array([x, h - bottom / 2, z]), bottom / 2, rng.uniform(0.12, 0.18), ids["vegetation"] * 1000, bark
            )
            leaves = Cylinder(
                np.array([x, h - (bottom + top) / 2, z]), (top - bottom) / 2, crown, ids["vegetation"] * 1000, foliage
            )
            if self._crowded(x, z, trunk.radius) or self.hides_protected(leaves.corners()):
                continue
            self.primitives += [trunk, leaves]
            self.occupied.append((x, z, trunk.radius))

    def _crowded(self, x: float, z: float, radius: float) -> bool:
        return any(np.hypot(x - ox, z - oz) < r + radius + 0.3 for ox, oz, r in self.occupied)

    def things(self, count: int) -> None:
        """Random things until `count` instances are in the scene (look-alikes included) or space runs out."""
        rng = self.rng
        classes, weights = ["car", "person", "truck", "rider"], [0.5, 0.25, 0.13, 0.12]
        placed = len(self.instances)
        for _ in range(8 * count):
            if placed >= count:
                return
            name = classes[rng.choice(len(classes), p=weights)]
            if name == "rider" and count - placed < 2:
                continue
            models = [self.model("bicycle"), self.model("rider")] if name == "rider" else [self.model(name)]
            _, high = models[0].bounds
            half_width = float(np.hypot(high[0], high[2])) if name == "person" else float(high[0])
            x = self.lateral(name, half_width)
            z, yaw = rng.uniform(5.0, 65.0), self.heading(name, x)
            if self.fits(self.corners(models, x, z, yaw), x, z):
                placed += len(self.place(models, x, z, yaw))


def _radius(corners: np.ndarray, x: float, z: float) -> float:
    """Radius of a circle about (x, z) on the ground that holds the corners' footprint."""
    return float(np.hypot(*np.abs(corners[:, [0, 2]] - (x, z)).max(axis=0)))
