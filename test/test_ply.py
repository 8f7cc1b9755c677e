"""PLY export: header, byte layout, round trip, NaN points of organized clouds dropped, foreign files rejected."""

from __future__ import annotations

import numpy as np
import pytest

from depth_panoptic_ros.data.ply import read_ply, write_ply
from depth_panoptic_ros.geometry.backproject import PanopticCloud, build_cloud
from depth_panoptic_ros.geometry.camera import CameraModel

HEADER = (
    b"ply\nformat binary_little_endian 1.0\nelement vertex 2\n"
    b"property float x\nproperty float y\nproperty float z\n"
    b"property uchar red\nproperty uchar green\nproperty uchar blue\n"
    b"property uint label\nproperty uint instance\nend_header\n"
)


def two_points() -> PanopticCloud:
    return PanopticCloud(
        xyz=np.array([[1.0, -2.0, 3.5], [0.25, 0.5, 80.0]], np.float32),
        rgb=np.array([[10, 20, 30], [255, 128, 0]], np.uint8),
        label=np.array([26, 7], np.uint32),
        instance=np.array([26004, 7000], np.uint32),
    )


def test_header_and_bytes_of_a_vertex(tmp_path):
    write_ply(tmp_path / "c.ply", two_points())
    raw = (tmp_path / "c.ply").read_bytes()
    assert raw.startswith(HEADER)
    body = raw[len(HEADER) :]
    assert len(body) == 2 * 23  # 3 float + 3 uchar + 2 uint, packed
    first = body[:23]
    np.testing.assert_array_equal(np.frombuffer(first[:12], "<f4"), [1.0, -2.0, 3.5])
    assert list(first[12:15]) == [10, 20, 30]
    np.testing.assert_array_equal(np.frombuffer(first[15:23], "<u4"), [26, 26004])


def test_round_trip(tmp_path):
    cloud = two_points()
    write_ply(tmp_path / "c.ply", cloud)
    back = read_ply(tmp_path / "c.ply")
    for name in ("xyz", "rgb", "label", "instance"):
        np.testing.assert_array_equal(getattr(back, name), getattr(cloud, name))
        assert getattr(back, name).dtype == getattr(cloud, name).dtype


def test_organized_cloud_drops_nan_points(tmp_path):
    camera = CameraModel.from_matrices(4, 3, [[10.0, 0, 1.5], [0, 10, 1], [0, 0, 1]])
    depth = np.full((3, 4), 2.0, np.float32)
    depth[0] = 0.0
    rgb = np.arange(3 * 4 * 3, dtype=np.uint8).reshape(3, 4, 3)
    panoptic = np.arange(12, dtype=np.int32).reshape(3, 4) + 26000
    organized = build_cloud(depth, camera, rgb=rgb, panoptic_ids=panoptic, organized=True)
    flat = build_cloud(depth, camera, rgb=rgb, panoptic_ids=panoptic)
    write_ply(tmp_path / "c.ply", organized)
    back = read_ply(tmp_path / "c.ply")
    assert back.xyz.shape == (8, 3)
    np.testing.assert_array_equal(back.xyz, flat.xyz)
    np.testing.assert_array_equal(back.rgb, rgb[1:].reshape(-1, 3))
    np.testing.assert_array_equal(back.instance, panoptic[1:].ravel())


def test_empty_cloud(tmp_path):
    empty = PanopticCloud(
        np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), np.zeros(0, np.uint32), np.zeros(0, np.uint32)
    )
    write_ply(tmp_path / "e.ply", empty)
    assert read_ply(tmp_path / "e.ply").xyz.shape == (0, 3)


def test_foreign_or_truncated_files_are_rejected(tmp_path):
    path = tmp_path / "c.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n1\n")
    with pytest.raises(ValueError, match=r"c\.ply: not a PLY in write_ply's layout"):
        read_ply(path)
    path.write_bytes(b"not a ply at all")
    with pytest.raises(ValueError, match="not a PLY in write_ply's layout"):
        read_ply(path)
    write_ply(path, two_points())
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"c\.ply: expected 2 vertices of 23 bytes, got 41 bytes"):
        read_ply(path)
