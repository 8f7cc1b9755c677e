"""KITTI readers: velodyne .bin, calibration .txt (synthetic and real), depth PNG round trips and errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depth_panoptic_ros.data.kitti import (
    read_depth_png,
    read_kitti_calib,
    read_points,
    read_velodyne_bin,
    write_depth_png,
)

P2 = np.array([[700.0, 0, 600, 45.0], [0, 710, 180, -0.3], [0, 0, 1, 0.005]])
R0 = np.array([[1.0, 0.01, 0], [-0.01, 1, 0], [0, 0, 1]])
TR = np.array([[0.0, -1, 0, 0.1], [0, 0, -1, -0.2], [1, 0, 0, -0.3]])


def write_calib(path, lines: dict[str, np.ndarray], colon: bool = True) -> None:
    sep = ": " if colon else " "
    path.write_text("\n".join(f"{k}{sep}{' '.join(f'{x:.12e}' for x in v.ravel())}" for k, v in lines.items()) + "\n\n")


def object_calib(tmp_path):
    path = tmp_path / "calib.txt"
    zeros = np.zeros((3, 4))
    write_calib(path, {"P0": zeros, "P1": zeros, "P2": P2, "P3": zeros, "R0_rect": R0, "Tr_velo_to_cam": TR})
    return path


def test_velodyne_bin_round_trip(tmp_path):
    points = np.arange(24, dtype=np.float32).reshape(6, 4) / 7
    points.tofile(tmp_path / "sweep.bin")
    read = read_velodyne_bin(tmp_path / "sweep.bin")
    assert read.dtype == np.float32 and read.shape == (6, 4)
    np.testing.assert_array_equal(read, points)
    np.testing.assert_array_equal(read_points(tmp_path / "sweep.bin"), points)


def test_velodyne_bin_with_a_partial_point_is_rejected(tmp_path):
    np.zeros(7, np.float32).tofile(tmp_path / "broken.bin")
    with pytest.raises(ValueError, match=r"broken\.bin: .*4 float32 per point, got 7 floats"):
        read_velodyne_bin(tmp_path / "broken.bin")


def test_read_points_npy(tmp_path):
    points = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # float64 on disk -> float32
    np.save(tmp_path / "cloud.npy", points)
    read = read_points(tmp_path / "cloud.npy")
    assert read.dtype == np.float32
    np.testing.assert_array_equal(read, points)


@pytest.mark.parametrize(
    ("array", "got"),
    [(np.zeros(5), r"float64 \(5,\)"), (np.zeros((4, 2)), r"float64 \(4, 2\)"), (np.zeros((4, 3), int), "int64")],
)
def test_read_points_npy_of_the_wrong_shape_or_type(tmp_path, array, got):
    np.save(tmp_path / "cloud.npy", array)
    with pytest.raises(ValueError, match=rf"cloud\.npy: expected an \(N, 3\+\) float array, got {got}"):
        read_points(tmp_path / "cloud.npy")


def test_read_points_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"unsupported point file type '\.pcd' \(expected \.bin or \.npy\)"):
        read_points(tmp_path / "cloud.pcd")


def test_calib_gives_P2_camera_and_rectified_extrinsic(tmp_path):
    camera, T = read_kitti_calib(object_calib(tmp_path), image_size=(1242, 375))
    assert (camera.width, camera.height) == (1242, 375)
    np.testing.assert_allclose(camera.P, P2)
    np.testing.assert_allclose(camera.K, P2[:, :3])
    # T = [R0 0; 0 1] @ [Tr; 0 0 0 1], written out by hand.
    expected = np.array(
        [
            [0.0, -1, -0.01, 0.1 - 0.002],
            [0.0, 0.01, -1, -0.001 - 0.2],
            [1.0, 0, 0, -0.3],
            [0, 0, 0, 1],
        ]
    )
    np.testing.assert_allclose(T, expected, atol=1e-12)


def test_calib_tracking_key_names(tmp_path):
    path = tmp_path / "tracking.txt"
    write_calib(path, {"P2": P2, "R_rect": R0, "Tr_velo_cam": TR}, colon=False)
    _, T = read_kitti_calib(path, image_size=(1242, 375))
    _, T_object = read_kitti_calib(object_calib(tmp_path), image_size=(1242, 375))
    np.testing.assert_array_equal(T, T_object)


def test_calib_missing_key(tmp_path):
    path = tmp_path / "calib.txt"
    write_calib(path, {"P2": P2, "R0_rect": R0})
    with pytest.raises(ValueError, match=r"calib\.txt: missing calibration key 'Tr_velo_to_cam'"):
        read_kitti_calib(path, image_size=(10, 10))
    with pytest.raises(ValueError, match="missing calibration key 'P3'"):
        read_kitti_calib(path, image_size=(10, 10), camera=3)


def test_calib_wrong_count_and_bad_numbers(tmp_path):
    path = tmp_path / "calib.txt"
    write_calib(path, {"P2": P2, "R0_rect": R0[:2], "Tr_velo_to_cam": TR})
    with pytest.raises(ValueError, match=r"calib\.txt: R0_rect: expected 9 values, got 6"):
        read_kitti_calib(path, image_size=(10, 10))
    path.write_text("P2: 1 2 x\n")
    with pytest.raises(ValueError, match=r"calib\.txt:1: P2: values are not numbers"):
        read_kitti_calib(path, image_size=(10, 10))


def test_calib_rejects_unknown_camera_and_zero_focal_length(tmp_path):
    path = object_calib(tmp_path)
    with pytest.raises(ValueError, match="KITTI camera must be 0, 1, 2 or 3, got 4"):
        read_kitti_calib(path, image_size=(10, 10), camera=4)
    with pytest.raises(ValueError, match="non-positive focal length"):
        read_kitti_calib(path, image_size=(10, 10), camera=0)  # P0 is all zeros here


def test_real_kitti_calib(kitti_object):
    camera, T = read_kitti_calib(kitti_object / "calib" / "000000.txt", image_size=(1224, 370))
    image = cv2.imread(str(kitti_object / "image_2" / "000000.png"))
    assert camera.shape == image.shape[:2] == (370, 1224)
    assert camera.fx == pytest.approx(707.0493)
    # A rigid transform: orthonormal rotation; LiDAR forward (x) is the camera's z.
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-5)
    np.testing.assert_array_equal(T[3], [0, 0, 0, 1])
    assert T[2, 0] == pytest.approx(1.0, abs=0.01)
    # Camera 2 sits ~6 cm left of camera 0 (P2[0, 3] = -fx * baseline > 0); camera 3 ~47 cm right.
    assert camera.baseline == pytest.approx(-0.0647, abs=1e-3)
    right, _ = read_kitti_calib(kitti_object / "calib" / "000000.txt", image_size=(1224, 370), camera=3)
    assert right.baseline - camera.baseline == pytest.approx(0.537, abs=2e-3)


def test_real_velodyne_sweep(kitti_object):
    points = read_velodyne_bin(kitti_object / "velodyne" / "000000.bin")
    assert 100_000 < len(points) < 130_000
    ranges = np.linalg.norm(points[:, :3], axis=1)
    assert np.all(np.isfinite(points)) and ranges.max() < 130.0
    assert 0.0 <= points[:, 3].min() and points[:, 3].max() <= 1.0  # reflectance


def test_depth_png_round_trip(tmp_path):
    depth = np.array([[0.0, 1.0, 2.5], [10.0 + 1 / 256, 80.25, 255.99609375]], np.float32)
    write_depth_png(tmp_path / "d.png", depth)
    raw = cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, [[0, 256, 640], [2561, 20544, 65535]])
    np.testing.assert_array_equal(read_depth_png(tmp_path / "d.png"), depth)


def test_depth_png_rounds_to_the_nearest_step(tmp_path):
    write_depth_png(tmp_path / "d.png", np.array([[1.0 + 0.4 / 256, 1.0 + 0.6 / 256]]))
    np.testing.assert_array_equal(read_depth_png(tmp_path / "d.png"), [[1.0, 1.0 + 1 / 256]])


@pytest.mark.parametrize(
    ("depth", "match"),
    [
        (np.zeros((2, 2, 1)), r"depth: expected an \(H, W\) array, got shape \(2, 2, 1\)"),
        (np.array([[-1.0, 2.0]]), r"finite values in \[0, 255.996\] m, got \[-1.000, 2.000\]"),
        (np.array([[300.0]]), r"got \[0.000, 300.000\]"),
        (np.array([[np.nan, 1.0]]), "finite values"),
        (np.array([[np.inf]]), "finite values"),
    ],
)
def test_write_depth_png_rejects_unrepresentable_depth(tmp_path, depth, match):
    with pytest.raises(ValueError, match=match):
        write_depth_png(tmp_path / "d.png", depth)


@pytest.mark.parametrize(
    ("image", "got"),
    [(np.zeros((4, 4), np.uint8), r"uint8 \(4, 4\)"), (np.zeros((4, 4, 3), np.uint16), r"uint16 \(4, 4, 3\)")],
)
def test_read_depth_png_rejects_non_uint16_single_channel(tmp_path, image, got):
    cv2.imwrite(str(tmp_path / "d.png"), image)
    with pytest.raises(ValueError, match=rf"d\.png: a depth PNG must be single-channel uint16, got {got}"):
        read_depth_png(tmp_path / "d.png")


def test_read_depth_png_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"missing\.png: cannot read as an image"):
        read_depth_png(tmp_path / "missing.png")


def test_real_kitti_depth_ground_truth(kitti_depth_demo):
    depth = read_depth_png(kitti_depth_demo / "depth" / "0000000005.png")
    rgb = cv2.imread(str(kitti_depth_demo / "rgb" / "0000000005.png"))
    assert depth.dtype == np.float32 and depth.shape == rgb.shape[:2]
    valid = depth > 0
    assert 0.15 < valid.mean() < 0.25  # semi-dense: ~20% of the pixels
    assert 4.0 < depth[valid].min() and depth[valid].max() < 90.0
    rows = np.flatnonzero(valid.any(axis=1))
    assert 100 < rows.min() < 140 and rows.max() > 360  # the sample data's README: rows ~119-369
    # Values are whole multiples of 1/256 m.
    np.testing.assert_array_equal(depth[valid] * 256, np.round(depth[valid] * 256))
