"""Depth-aware panoptic segmentation for camera + LiDAR, as a ROS 2 package.

The core (geometry, depth, panoptic, products, evaluation, data, training) never imports ROS; ``ros/`` is
the only adapter. Importing this package is light: torch and OpenCV load only when a function needs them.
"""

from __future__ import annotations

import importlib
from pkgutil import extend_path
from typing import Any

# The rosidl-generated messages (``depth_panoptic_ros.msg``) are installed beside the sources in the
# interpreter's site-packages; whichever copy is imported first finds the other through __path__.
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"

_LAZY = {
    "complete_depth": "depth_panoptic_ros.depth.classical",
    "pq_compute": "depth_panoptic_ros.evaluation.pq",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["complete_depth", "pq_compute", "__version__"]
