"""Labeled synthetic street scenes (camera, stereo, LiDAR) for training, tests and the demo.

No public driving data can be downloaded where this package is built, so it makes its own: random streets
rendered by vectorized ray casting, with exact depth, Cityscapes panoptic ids and look-alike instance pairs.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SyntheticConfig": "depth_panoptic_ros.data.synthetic.config",
    "LidarConfig": "depth_panoptic_ros.data.synthetic.config",
    "camera_preset": "depth_panoptic_ros.data.synthetic.presets",
    "PRESETS": "depth_panoptic_ros.data.synthetic.presets",
    "SyntheticFrame": "depth_panoptic_ros.data.synthetic.generator",
    "SyntheticDataset": "depth_panoptic_ros.data.synthetic.generator",
    "generate_frame": "depth_panoptic_ros.data.synthetic.generator",
    "export_cityscapes": "depth_panoptic_ros.data.synthetic.export",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)
