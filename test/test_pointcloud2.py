"""PointCloud2 layout: pack -> bytes read back by offset, buffer reuse, unpacking driver layouts, layout errors."""

from __future__ import annotations

import numpy as np
import pytest

from depth_panoptic_ros.geometry.backproject import PanopticCloud
from depth_panoptic_ros.geometry.pointcloud2 import (
    FLOAT32,
    FLOAT64,
    INT8,
    POINT_FIELDS,
    UINT16,
    UINT32,
    PointFieldSpec,
    pack_cloud,
    unpack_xyz,
)


def flat_cloud() -> PanopticCloud:
    return PanopticCloud(
        xyz=np.array([[1.0, 2.0, 3.0], [-0.5, 0.25, 40.0], [7.0, -8.0, 9.5]], np.float32),
        rgb=np.array([[255, 0, 0], [0x12, 0x34, 0x56], [1, 2, 3]], np.uint8),
        label=np.array([26, 7, 0], np.uint32),
        instance=np.array([26001, 7000, 0], np.uint32),
    )


def test_datatype_numbers_match_sensor_msgs():
    assert (INT8, UINT16, UINT32, FLOAT32, FLOAT64) == (1, 4, 6, 7, 8)
    assert [(f.name, f.offset, f.datatype, f.count) for f in POINT_FIELDS] == [
        ("x", 0, 7, 1),
        ("y", 4, 7, 1),
        ("z", 8, 7, 1),
        ("rgb", 12, 7, 1),
        ("label", 16, 6, 1),
        ("instance", 20, 6, 1),
    ]


def test_packed_bytes_read_back_by_offset():
    cloud = flat_cloud()
    packed = pack_cloud(cloud)
    assert (packed.width, packed.height, packed.point_step, packed.row_step) == (3, 1, 24, 72)
    assert packed.is_dense and packed.data.dtype == np.uint8 and packed.data.size == 72
    points = packed.data.reshape(3, 24)
    np.testing.assert_array_equal(points[:, 0:12].copy().view("<f4"), cloud.xyz)
    # rgb: little-endian uint32 0x00RRGGBB -> bytes B, G, R, 0.
    np.testing.assert_array_equal(points[:, 12:16], [[0, 0, 255, 0], [0x56, 0x34, 0x12, 0], [3, 2, 1, 0]])
    np.testing.assert_array_equal(points[:, 16:20].copy().view("<u4").ravel(), [26, 7, 0])
    np.testing.assert_array_equal(points[:, 20:24].copy().view("<u4").ravel(), [26001, 7000, 0])


def test_pack_unpack_round_trip():
    cloud = flat_cloud()
    packed = pack_cloud(cloud)
    xyz = unpack_xyz(packed.data.tobytes(), packed.fields, packed.point_step, packed.width, packed.height)
    np.testing.assert_array_equal(xyz, cloud.xyz)


def test_organized_cloud_keeps_rows_and_is_not_dense():
    xyz = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    xyz[1, 2] = np.nan
    cloud = PanopticCloud(
        xyz=xyz,
        rgb=np.zeros((2, 3, 3), np.uint8),
        label=np.arange(6, dtype=np.uint32).reshape(2, 3),
        instance=np.zeros((2, 3), np.uint32),
    )
    packed = pack_cloud(cloud)
    assert (packed.width, packed.height, packed.row_step, packed.is_dense) == (3, 2, 72, False)
    labels = packed.data.reshape(6, 24)[:, 16:20].copy().view("<u4").ravel()
    np.testing.assert_array_equal(labels, np.arange(6))  # row-major order
    np.testing.assert_array_equal(unpack_xyz(packed.data, packed.fields, 24, 3, 2), xyz.reshape(-1, 3))


def test_float64_and_strided_clouds_pack_as_float32_and_inf_is_not_dense():
    """Clouds assembled by hand: float64 coordinates and views with strides pack like float32 copies of them."""
    rng = np.random.default_rng(4)
    xyz = rng.normal(0, 50, (4, 10, 3))
    organized = PanopticCloud(
        xyz=xyz[:, ::2],
        rgb=rng.integers(0, 256, (4, 5, 3), dtype=np.uint8),
        label=rng.integers(0, 2**32, (4, 5), dtype=np.uint32),
        instance=rng.integers(0, 2**32, (4, 5), dtype=np.uint32),
    )
    packed = pack_cloud(organized)
    points = packed.data.reshape(20, 24)
    np.testing.assert_array_equal(points[:, 0:12].copy().view("<f4"), xyz[:, ::2].reshape(-1, 3).astype(np.float32))
    np.testing.assert_array_equal(points[:, 12:15], organized.rgb.reshape(-1, 3)[:, ::-1])
    np.testing.assert_array_equal(points[:, 16:20].copy().view("<u4").ravel(), organized.label.ravel())
    np.testing.assert_array_equal(points[:, 20:24].copy().view("<u4").ravel(), organized.instance.ravel())
    assert packed.is_dense
    xyz[3, 8, 2] = -np.inf
    assert not pack_cloud(organized).is_dense


def test_buffer_is_reused_when_large_enough():
    buffer = np.zeros(200, np.uint8)
    packed = pack_cloud(flat_cloud(), out=buffer)
    assert packed.data.size == 72 and np.shares_memory(packed.data, buffer)
    assert buffer[:12].view("<f4").tolist() == [1.0, 2.0, 3.0]
    small = np.zeros(50, np.uint8)
    packed = pack_cloud(flat_cloud(), out=small)
    assert not np.shares_memory(packed.data, small) and not small.any()


def test_empty_cloud():
    empty = PanopticCloud(
        np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), np.zeros(0, np.uint32), np.zeros(0, np.uint32)
    )
    packed = pack_cloud(empty)
    assert (packed.width, packed.height, packed.data.size, packed.is_dense) == (0, 1, 0, True)
    assert unpack_xyz(b"", POINT_FIELDS, 24, 0, 1).shape == (0, 3)


def test_unpack_driver_layout_with_xyz_in_the_middle():
    # An Ouster-like point of 48 bytes: t uint32 @0, intensity f32 @4, xyz f32 @16/20/24, ring u16 @28, pad.
    layout = np.dtype(
        {
            "names": ["t", "intensity", "x", "y", "z", "ring"],
            "formats": ["<u4", "<f4", "<f4", "<f4", "<f4", "<u2"],
            "offsets": [0, 4, 16, 20, 24, 28],
            "itemsize": 48,
        }
    )
    points = np.zeros(4, layout)
    points["x"], points["y"], points["z"] = [1.5, 2, 3, 4], [-1, -2, -3, -4], [0.5, 0.25, 0.125, 8]
    points["intensity"], points["ring"], points["t"] = 99.0, 7, 123456
    fields = [
        ("t", 0, UINT32, 1),
        ("intensity", 4, FLOAT32, 1),
        ("x", 16, FLOAT32, 1),
        ("y", 20, FLOAT32, 1),
        ("z", 24, FLOAT32, 1),
        ("ring", 28, UINT16, 1),
    ]
    xyz = unpack_xyz(points.tobytes(), fields, 48, width=2, height=2)
    assert xyz.dtype == np.float32
    np.testing.assert_array_equal(xyz, [[1.5, -1, 0.5], [2, -2, 0.25], [3, -3, 0.125], [4, -4, 8]])


@pytest.mark.parametrize("is_bigendian", [False, True])
def test_unpack_float64_coordinates(is_bigendian):
    order = ">" if is_bigendian else "<"
    points = np.array(
        [(1.25, -2.5, 3.0, 0.7), (4.0, 5.0, 6.0, 0.1)],
        dtype=[("x", order + "f8"), ("y", order + "f8"), ("z", order + "f8"), ("i", order + "f4")],
    )
    fields = [
        PointFieldSpec("x", 0, FLOAT64),
        PointFieldSpec("y", 8, FLOAT64),
        PointFieldSpec("z", 16, FLOAT64),
        PointFieldSpec("i", 24, FLOAT32),
    ]
    xyz = unpack_xyz(np.frombuffer(points.tobytes(), np.uint8), fields, 28, 2, 1, is_bigendian=is_bigendian)
    np.testing.assert_array_equal(xyz, [[1.25, -2.5, 3.0], [4.0, 5.0, 6.0]])


XYZ = [("x", 0, FLOAT32, 1), ("y", 4, FLOAT32, 1), ("z", 8, FLOAT32, 1)]


@pytest.mark.parametrize(
    ("fields", "point_step", "size", "match"),
    [
        (XYZ, 8, 16, r"field 'z' spans bytes 8\.\.12 but point_step is 8"),
        (XYZ + [("rgb", 12, FLOAT32, 1)], 12, 24, r"field 'rgb' spans bytes 12\.\.16 but point_step is 12"),
        (
            XYZ[:2] + [("intensity", 8, FLOAT32, 1)],
            12,
            24,
            r"lacks field\(s\) \['z'\]; it has \['x', 'y', 'intensity'\]",
        ),
        (XYZ, 12, 20, r"data holds 20 bytes, expected point_step \* width \* height = 12 \* 2 \* 1 = 24"),
        (XYZ[:2] + [("z", 8, 9, 1)], 12, 24, "field 'z': unknown datatype 9"),
        (XYZ[:2] + [("z", 8, UINT32, 1)], 12, 24, "field 'z': expected FLOAT32 or FLOAT64, got datatype 6"),
    ],
)
def test_bad_layouts_are_clear_errors(fields, point_step, size, match):
    with pytest.raises(ValueError, match=match):
        unpack_xyz(bytes(size), fields, point_step, 2, 1)
