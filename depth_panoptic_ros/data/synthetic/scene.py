"""A random street scene: the street, street furniture and things as solids, and the surfaces they wear.

Everything is placed in the left camera's optical frame (x right, y down, z forward) with the road as the plane
y = camera height, so that ground truth follows from geometry alone. The things' 3D boxes and the look-alike
pairs are kept for evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_panoptic_ros.data.synthetic.config import SyntheticConfig
from depth_panoptic_ros.data.synthetic.primitives import Box, Cylinder
from depth_panoptic_ros.data.synthetic.street import Street, sample_street
from depth_panoptic_ros.data.synthetic.surfaces import SurfaceBook
from depth_panoptic_ros.data.synthetic.things import Instance, ThingPlacer
from depth_panoptic_ros.geometry.camera import CameraModel


@dataclass(frozen=True)
class Scene:
    """Everything the renderer and the evaluation need: geometry, surfaces, 3D boxes of things, look-alikes."""

    street: Street
    primitives: tuple[Box | Cylinder, ...]
    instances: tuple[Instance, ...]
    surfaces: np.ndarray  # (S, surfaces.N_COLUMNS)
    look_alike_pairs: np.ndarray  # (P, 2) int32 panoptic ids (nearer, farther), depth-separated look-alikes
    same_depth_pairs: np.ndarray  # (Q, 2) int32 panoptic ids of look-alikes side by side at one depth


def sample_scene(config: SyntheticConfig, camera: CameraModel, height: float, rng: np.random.Generator) -> Scene:
    """A random scene for the left camera `camera` mounted `height` meters above the road."""
    book = SurfaceBook(rng)
    book.add((0, 0, 0), contrast=0.0, texels_per_m=1, reflectance=0.0)  # row 0: sky, colored by the renderer
    street = sample_street(rng, book, height)
    placer = ThingPlacer(rng, camera, street, book)
    pairs = {}
    for same_depth, share in ((False, config.look_alike_fraction), (True, config.same_depth_fraction)):
        pair = placer.look_alike_pair(same_depth, config.look_alike_min_gap_m) if rng.random() < share else None
        pairs[same_depth] = np.zeros((0, 2), np.int32) if pair is None else pair[None]
    placer.furniture()
    placer.things(int(rng.integers(config.n_things[0], config.n_things[1] + 1)))
    return Scene(street, tuple(placer.primitives), tuple(placer.instances), book.table(), pairs[False], pairs[True])
