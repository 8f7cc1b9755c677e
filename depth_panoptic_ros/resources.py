"""Where the package's installed files (models, configs) are, on a ROS distro, in the venv and in a checkout."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "depth_panoptic_ros"
DEFAULT_MODEL = "models/default.safetensors"


def share_dir() -> Path:
    """The package's share directory; falls back to the source checkout when nothing is installed."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            return Path(get_package_share_directory(PACKAGE))
        except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH unset (plain venv)
            pass
    except ImportError:
        pass
    for candidate in (Path(sys.prefix) / "share" / PACKAGE, Path(__file__).resolve().parents[1]):
        if (candidate / "models").is_dir():
            return candidate
    return Path(__file__).resolve().parents[1]


def resolve_path(path: str | Path) -> Path:
    """Absolute, relative to the working directory, or `package://depth_panoptic_ros/<path in share>`."""
    text = str(path)
    prefix = f"package://{PACKAGE}/"
    if text.startswith(prefix):
        return share_dir() / text[len(prefix) :]
    if text.startswith("package://"):
        raise ValueError(f"{text}: only package://{PACKAGE}/... paths are resolved here")
    return Path(text).expanduser()


def default_model_path() -> Path:
    return share_dir() / DEFAULT_MODEL
