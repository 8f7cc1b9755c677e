"""Shared fixtures: the real sample data (skipped when absent), ROS isolation, GPU skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# ROS 2 traffic of the tests stays on this machine (no multicast discovery on the LAN) and in its own domain.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(40 + os.getpid() % 60))


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; the test is skipped when it is absent (users of the package lack it)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"sample data not available: {path}")
    return path


@pytest.fixture
def kitti_object() -> Path:
    return shared_data("kitti", "object")


@pytest.fixture
def kitti_depth_demo() -> Path:
    return shared_data("kitti", "depth_demo")


@pytest.fixture
def coco_sample() -> Path:
    return shared_data("panoptic_coco_sample")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
