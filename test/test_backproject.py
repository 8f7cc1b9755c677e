"""backproject / build_cloud: exact plane recovery, round trip with project_points, cloud assembly, real KITTI."""

from __future__ import annotations

import numpy as np
import pytest

from depth_panoptic_ros.data.kitti import read_kitti_calib, read_velodyne_bin
from depth_panoptic_ros.geometry.backproject import PanopticCloud, backproject, build_cloud, pixel_rays
from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.geometry.lidar import project_points

W, H = 64, 48
CAMERA = CameraModel.from_matrices(W, H, [[80.0, 0, 31.5], [0, 90, 23.5], [0, 0, 1]])


def test_plane_at_known_depth_is_recovered_exactly():
    depth = np.full((H, W), 7.5, np.float32)
    xyz = backproject(depth, CAMERA)
    assert xyz.shape == (H, W, 3) and xyz.dtype == np.float32
    v, u = np.mgrid[0:H, 0:W]
    np.testing.assert_array_equal(xyz[..., 2], 7.5)
    np.testing.assert_allclose(xyz[..., 0], (u - 31.5) * 7.5 / 80.0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(xyz[..., 1], (v - 23.5) * 7.5 / 90.0, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("stride", [1, 3])
def test_pixel_rays_scaled_by_depth_are_the_backprojected_points(stride):
    """A skewed camera with a right camera's P: rays times depth give backproject's x and y bit for bit."""
    K = [[80.0, 2.0, 31.5], [0, 90, 23.5], [0, 0, 1]]
    camera = CameraModel.from_matrices(W, H, K, np.hstack([K, [[-8.0], [0.0], [0.0]]]))
    depth = np.random.default_rng(1).uniform(0.5, 60.0, (H, W)).astype(np.float32)
    ray_x, ray_y = pixel_rays(camera, stride)
    xyz = backproject(depth, camera, stride)
    assert ray_x.shape == xyz.shape[:2] and ray_y.shape == (xyz.shape[0], 1)
    assert ray_x.dtype == ray_y.dtype == np.float32
    np.testing.assert_array_equal(ray_x * xyz[..., 2], xyz[..., 0])
    np.testing.assert_array_equal(ray_y * xyz[..., 2], xyz[..., 1])
    # Pixel (u, v): y / z = (v - cy) / fy, x / z = (u - cx - skew * y / z) / fx.
    v, u = 3 * stride, 5 * stride
    y = (v - 23.5) / 90.0
    assert ray_y[3, 0] == pytest.approx(y, rel=1e-6)
    assert ray_x[3, 5] == pytest.approx((u - 31.5 - 2.0 * y) / 80.0, rel=1e-6)


@pytest.mark.parametrize("stride", [1, 2])
def test_rays_without_skew_are_one_row_equal_to_every_row_of_the_full_formula(stride):
    """Without skew ray_x is one row (no second full-size map to read), bit for bit every row of the full
    (H', W') formula; backproject's points are unchanged by it."""
    camera = CameraModel.from_matrices(W, H, [[81.0, 0, 31.7], [0, 90, 23.5], [0, 0, 1]])
    ray_x, _ = pixel_rays(camera, stride)
    inverse = np.linalg.inv(camera.intrinsics).astype(np.float32)
    u = np.arange(0, W, stride, dtype=np.float32)[None, :]
    v = np.arange(0, H, stride, dtype=np.float32)[:, None]
    full = inverse[0, 0] * u + inverse[0, 1] * v + inverse[0, 2]
    assert ray_x.shape == (1, full.shape[1])
    np.testing.assert_array_equal(np.broadcast_to(ray_x, full.shape).view(np.uint32), full.view(np.uint32))
    depth = np.random.default_rng(2).uniform(0.5, 60.0, (H, W)).astype(np.float32)
    np.testing.assert_array_equal(backproject(depth, camera, stride)[..., 0], full * depth[::stride, ::stride])


def test_rays_of_a_camera_are_made_once_and_cannot_be_changed():
    ray_x, ray_y = pixel_rays(CAMERA)
    again = pixel_rays(CameraModel.from_matrices(W, H, CAMERA.K))
    assert again[0] is ray_x and again[1] is ray_y
    with pytest.raises(ValueError, match="read-only"):
        ray_x[0, 0] = 1.0
    other = pixel_rays(CameraModel.from_matrices(W, H, [[81.0, 0, 31.5], [0, 90, 23.5], [0, 0, 1]]))
    assert other[0] is not ray_x and not np.array_equal(other[0], ray_x)


def test_backprojected_points_reproject_onto_their_pixels():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 60.0, (H, W)).astype(np.float32)
    projection = project_points(backproject(depth, CAMERA).reshape(-1, 3), np.eye(4), CAMERA)
    np.testing.assert_allclose(projection.depth, depth, rtol=1e-6)
    np.testing.assert_array_equal(projection.index, np.arange(H * W).reshape(H, W))


def test_invalid_depth_becomes_nan():
    depth = np.full((H, W), 3.0, np.float32)
    depth[0, :4] = [0.0, np.nan, np.inf, -2.0]
    xyz = backproject(depth, CAMERA)
    assert np.isnan(xyz[0, :4]).all()
    assert np.isfinite(xyz[0, 4:]).all() and np.isfinite(xyz[1:]).all()


def test_stride_samples_the_original_pixel_grid():
    depth = np.arange(H * W, dtype=np.float32).reshape(H, W) / 100 + 1
    strided = backproject(depth, CAMERA, stride=5)
    assert strided.shape == (10, 13, 3)  # ceil(48 / 5), ceil(64 / 5)
    np.testing.assert_array_equal(strided, backproject(depth, CAMERA)[::5, ::5])


@pytest.mark.parametrize("stride", [0, 1.5, -1])
def test_bad_stride(stride):
    with pytest.raises(ValueError, match=f"stride must be an integer >= 1, got {stride}"):
        backproject(np.ones((H, W)), CAMERA, stride)


def test_depth_of_the_wrong_size():
    with pytest.raises(ValueError, match=r"depth: expected shape \(48, 64\) \(the camera's image\), got \(64, 48\)"):
        backproject(np.ones((W, H)), CAMERA)


def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    depth = np.full((H, W), 10.0, np.float32)
    depth[:10] = 0.0  # sky: no depth
    depth[:, 60:] = 200.0  # far away
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = np.arange(W)  # red encodes the column
    rgb[..., 1] = np.arange(H)[:, None]  # green the row
    rgb[..., 2] = 7
    class_ids = np.full((H, W), 7, np.int32)
    class_ids[20:30, 10:20] = 26
    panoptic_ids = class_ids * 1000
    panoptic_ids[20:30, 10:20] = 26003
    return depth, rgb, class_ids, panoptic_ids


def test_flat_cloud_keeps_valid_points_with_their_labels():
    depth, rgb, class_ids, panoptic_ids = scene()
    cloud = build_cloud(depth, CAMERA, rgb=rgb, class_ids=class_ids, panoptic_ids=panoptic_ids, max_range=100.0)
    assert isinstance(cloud, PanopticCloud) and not cloud.organized
    assert cloud.xyz.shape == ((H - 10) * 60, 3)
    assert cloud.rgb.shape == (cloud.xyz.shape[0], 3) and cloud.rgb.dtype == np.uint8
    assert cloud.label.dtype == cloud.instance.dtype == np.uint32
    # Each point's color says which pixel it came from; its position and labels must match that pixel.
    cols, rows = cloud.rgb[:, 0].astype(int), cloud.rgb[:, 1].astype(int)
    assert rows.min() == 10 and cols.max() == 59
    np.testing.assert_allclose(cloud.xyz[:, 0], (cols - 31.5) * 10.0 / 80.0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(cloud.xyz[:, 1], (rows - 23.5) * 10.0 / 90.0, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(cloud.label, class_ids[rows, cols])
    np.testing.assert_array_equal(cloud.instance, panoptic_ids[rows, cols])
    assert np.count_nonzero(cloud.instance == 26003) == 100


def test_organized_cloud_keeps_the_grid_with_nan():
    depth, rgb, class_ids, panoptic_ids = scene()
    cloud = build_cloud(depth, CAMERA, rgb=rgb, panoptic_ids=panoptic_ids, max_range=100.0, organized=True, stride=2)
    assert cloud.organized and cloud.xyz.shape == (H // 2, W // 2, 3)
    assert cloud.rgb.shape == (H // 2, W // 2, 3) and cloud.instance.shape == (H // 2, W // 2)
    invalid = np.isnan(cloud.xyz).any(axis=2)
    expected = np.zeros((H // 2, W // 2), bool)
    expected[:5] = True  # rows 0..9 without depth
    expected[:, 30:] = True  # columns 60.. beyond max_range
    np.testing.assert_array_equal(invalid, expected)
    np.testing.assert_array_equal(cloud.rgb, rgb[::2, ::2])
    np.testing.assert_array_equal(cloud.instance, panoptic_ids[::2, ::2])
    np.testing.assert_array_equal(cloud.label, 0)  # no class map given


@pytest.mark.parametrize(
    ("stride", "max_range", "dtype", "with_rgb", "skew"),
    [
        (1, np.inf, np.float32, True, 2.0),
        (3, 30.0, np.float32, True, 2.0),
        (4, 12.0, np.float32, True, 2.0),
        (2, 25.0, np.float64, False, 2.0),
        (1, np.inf, np.float32, True, 0.0),
        (3, 30.0, np.float32, False, 0.0),
    ],
)
def test_flat_cloud_is_the_organized_cloud_without_its_invalid_points(stride, max_range, dtype, with_rgb, skew):
    """A right camera with skew (rays of every row) or without (one row of rays), odd sizes, invalid depth of
    every kind, and the image's last pixel kept (stride 1); the flat cloud (a compiled kernel) against the
    organized one (numpy), float32 or float64 depth, with and without an image."""
    K = [[80.0, skew, 31.5], [0, 90, 23.5], [0, 0, 1]]
    camera = CameraModel.from_matrices(W - 1, H + 1, K, np.hstack([K, [[-8.0], [0.0], [0.0]]]))
    rng = np.random.default_rng(4)
    depth = rng.uniform(0.5, 60.0, camera.shape).astype(np.float32)
    depth.ravel()[rng.choice(depth.size, 300, replace=False)] = rng.choice([0.0, -1.0, np.nan, np.inf], 300)
    depth[-1, -1] = 5.0
    depth = depth.astype(dtype)
    rgb = rng.integers(0, 256, camera.shape + (3,), dtype=np.uint8) if with_rgb else None
    ids = rng.choice(np.array([0, 7000, 26001, 26002]), camera.shape)
    maps = {"rgb": rgb, "panoptic_ids": ids, "stride": stride, "max_range": max_range}
    flat = build_cloud(depth, camera, label_divisor=1000, **maps)
    organized = build_cloud(depth, camera, class_ids=ids // 1000, organized=True, **maps)
    kept = np.isfinite(organized.xyz[..., 2])
    assert 0 < kept.sum() < kept.size and (stride > 1 or kept[-1, -1])
    np.testing.assert_array_equal(flat.xyz, organized.xyz[kept])
    for name in ("rgb", "label", "instance"):
        np.testing.assert_array_equal(getattr(flat, name), getattr(organized, name)[kept], err_msg=name)


def test_cloud_without_maps_is_black_and_void():
    cloud = build_cloud(np.full((H, W), 2.0, np.float32), CAMERA)
    assert cloud.xyz.shape == (H * W, 3)
    assert not cloud.rgb.any() and not cloud.label.any() and not cloud.instance.any()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rgb": np.zeros((H, W), np.uint8)}, r"rgb: expected shape \(48, 64, 3\)"),
        ({"rgb": np.zeros((H, W, 3), np.float32)}, "rgb: expected uint8, got float32"),
        ({"class_ids": np.zeros((H, W), np.float32)}, "class_ids: expected non-negative integer ids, got float32"),
        ({"panoptic_ids": np.full((H, W), -1)}, "panoptic_ids: expected non-negative integer ids, got int64 min -1"),
        ({"label_divisor": 1000}, "label_divisor .* needs panoptic_ids"),
        ({"label_divisor": 1000, "class_ids": np.zeros((H, W), np.int32)}, "class_ids or label_divisor, not both"),
        ({"panoptic_ids": np.zeros((H + 1, W), np.int32)}, r"panoptic_ids: expected shape \(48, 64\)"),
    ],
)
def test_cloud_input_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_cloud(np.ones((H, W), np.float32), CAMERA, **kwargs)


def test_kitti_lidar_depth_backprojects_onto_the_points(kitti_object):
    points = read_velodyne_bin(kitti_object / "velodyne" / "000000.bin")
    camera, T = read_kitti_calib(kitti_object / "calib" / "000000.txt", image_size=(1224, 370))
    projection = project_points(points, T, camera)
    xyz = backproject(projection.depth, camera)
    valid = projection.index >= 0
    # The cloud is in camera 2's frame: the rectified reference frame moved by t = inv(K) @ P2[:, 3].
    t = np.linalg.inv(camera.intrinsics) @ camera.P[:, 3]
    truth = points[projection.index[valid], :3] @ T[:3, :3].T + T[:3, 3] + t
    got = xyz[valid]
    np.testing.assert_allclose(got[:, 2], truth[:, 2], rtol=1e-5)
    # x, y are off by at most half a pixel of rounding.
    np.testing.assert_array_less(np.abs(got[:, 0] - truth[:, 0]), 0.5 * truth[:, 2] / camera.fx + 1e-4)
    np.testing.assert_array_less(np.abs(got[:, 1] - truth[:, 1]), 0.5 * truth[:, 2] / camera.fy + 1e-4)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("xyz", np.zeros((4, 2), np.float32), r"cloud xyz: expected \(M, 3\) or \(H, W, 3\), got \(4, 2\)"),
        ("rgb", np.zeros((3, 3), np.uint8), r"cloud rgb: expected uint8 \(4, 3\), got uint8 \(3, 3\)"),
        ("label", np.zeros(4, np.int32), r"cloud label: expected uint32 \(4,\), got int32 \(4,\)"),
        ("instance", np.zeros((4, 1), np.uint32), r"cloud instance: expected uint32 \(4,\), got uint32 \(4, 1\)"),
    ],
)
def test_hand_made_cloud_must_be_consistent(field, value, match):
    arrays = {
        "xyz": np.zeros((4, 3), np.float32),
        "rgb": np.zeros((4, 3), np.uint8),
        "label": np.zeros(4, np.uint32),
        "instance": np.zeros(4, np.uint32),
    }
    with pytest.raises(ValueError, match=match):
        PanopticCloud(**(arrays | {field: value}))
