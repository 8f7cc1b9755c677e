"""Camera presets that make synthetic frames geometrically interchangeable with KITTI or Cityscapes frames.

Networks trained on the synthetic data see the focal lengths, principal points, mounting heights and stereo
baselines of the real rigs, so depth statistics and object sizes in pixels match what they meet later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_panoptic_ros.geometry.camera import CameraModel


@dataclass(frozen=True)
class CameraPreset:
    camera: CameraModel  # the rectified left camera
    height_m: float  # camera height above the road
    baseline_m: float  # nominal stereo baseline of the rig


# name -> (width, height, fx, fy, cx, cy, camera height, baseline) at the rig's native resolution.
# KITTI: P2 of the 2011_09_26 calibration, cameras 1.65 m above the road, 0.54 m baseline.
# Cityscapes: the typical camera.json intrinsics at 2048x1024, camera 1.22 m high, 0.209 m baseline;
# the preset itself is the half resolution the depth-aware method trains at.
_RIGS = {
    "kitti": (1242, 375, 721.5377, 721.5377, 609.5593, 172.854, 1.65, 0.54),
    "cityscapes": (2048, 1024, 2262.52, 2265.3017905988554, 1096.98, 513.137, 1.22, 0.209313),
}
_PRESET_SIZE = {"kitti": (1242, 375), "cityscapes": (1024, 512)}
PRESETS = tuple(_RIGS)


def camera_preset(name: str, size: tuple[int, int] | None = None) -> CameraPreset:
    """The named rig's camera, resized to size = (width, height) when given (same field of view)."""
    if name not in _RIGS:
        raise ValueError(f"unknown camera preset {name!r}; expected one of {', '.join(PRESETS)}")
    width, height, fx, fy, cx, cy, height_m, baseline_m = _RIGS[name]
    camera = CameraModel.from_matrices(width, height, np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]]))
    out_width, out_height = _PRESET_SIZE[name] if size is None else size
    if int(out_width) <= 0 or int(out_height) <= 0:
        raise ValueError(f"synthetic image size must be positive (width, height), got {size}")
    if (out_width, out_height) != (width, height):
        camera = camera.resized(int(out_width), int(out_height))
    return CameraPreset(camera, height_m, baseline_m)
