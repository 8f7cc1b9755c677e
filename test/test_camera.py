"""CameraModel (validation, baseline, resize/crop against OpenCV and projection) and the YAML calibration files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml

from depth_panoptic_ros.data.calibration import Calibration, load_any_calibration, load_calibration
from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.geometry.lidar import project_points

K = np.array([[500.0, 0, 319.5], [0, 510, 239.5], [0, 0, 1]])
CAMERA = CameraModel.from_matrices(640, 480, K)


def pixel(camera: CameraModel, xyz: np.ndarray) -> np.ndarray:
    """Continuous pixel coordinates of camera-frame points, straight from P."""
    uvw = np.c_[xyz, np.ones(len(xyz))] @ camera.P.T
    return uvw[:, :2] / uvw[:, 2:]


def random_points(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(-3, 3, n), rng.uniform(-2, 2, n), rng.uniform(2, 10, n)]


def test_defaults_and_accessors():
    assert CAMERA.shape == (480, 640)
    np.testing.assert_array_equal(CAMERA.P, np.c_[K, np.zeros(3)])
    assert (CAMERA.fx, CAMERA.fy, CAMERA.cx, CAMERA.cy) == (500.0, 510.0, 319.5, 239.5)
    assert CAMERA.baseline == 0.0 and CAMERA.D.size == 0


def test_baseline_from_a_right_cameras_P():
    right = CameraModel.from_matrices(640, 480, K, np.c_[K, [-500.0 * 0.12, 0, 0]])
    assert right.baseline == pytest.approx(0.12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"K": np.zeros((3, 3))}, r"non-positive focal length \(fx=0.0"),
        ({"K": np.diag([500.0, -1.0, 1.0])}, "non-positive focal length"),
        ({"K": np.eye(2)}, r"camera K: expected 9 values, got shape \(2, 2\)"),
        ({"K": K, "P": np.ones((3, 3))}, r"camera P: expected 12 values, got shape \(3, 3\)"),
        ({"K": np.where(K == 500, np.nan, K)}, "camera K holds NaN or inf"),
        ({"K": K, "width": 0}, "camera size must be positive, got width=0 height=480"),
    ],
)
def test_invalid_models_are_rejected(kwargs, match):
    args = {"width": 640, "height": 480} | kwargs
    with pytest.raises(ValueError, match=match):
        CameraModel.from_matrices(**args)


def test_crop_shifts_pixels_by_the_crop_origin():
    crop = CAMERA.cropped(100, 50, 300, 200)
    xyz = random_points(50)
    np.testing.assert_allclose(pixel(crop, xyz), pixel(CAMERA, xyz) - [100, 50], atol=1e-9)
    with pytest.raises(ValueError, match=r"crop \(500, 0, 300x200\) outside a 640x480 image"):
        CAMERA.cropped(500, 0, 300, 200)


def test_cropped_projection_is_the_crop_of_the_full_projection():
    points = random_points(20_000, seed=1)
    full = project_points(points, np.eye(4), CAMERA)
    crop = project_points(points, np.eye(4), CAMERA.cropped(100, 50, 300, 200))
    np.testing.assert_array_equal(crop.depth, full.depth[50:250, 100:400])
    np.testing.assert_array_equal(crop.index, full.index[50:250, 100:400])


def test_resize_follows_opencv_pixel_centers():
    # A ramp image holding each pixel's own column/row; cv2.resize (bilinear, pixel-center convention) then tells
    # which original coordinate every resized pixel samples. The resized model must map points the same way.
    width, height = 40, 30
    ramp_u = np.tile(np.arange(width, dtype=np.float32), (height, 1))
    ramp_v = np.tile(np.arange(height, dtype=np.float32)[:, None], (1, width))
    camera = CameraModel.from_matrices(width, height, [[30.0, 0, 19.5], [0, 30, 14.5], [0, 0, 1]])
    resized = camera.resized(60, 45)  # x 1.5
    sampled_u = cv2.resize(ramp_u, (60, 45), interpolation=cv2.INTER_LINEAR)
    sampled_v = cv2.resize(ramp_v, (60, 45), interpolation=cv2.INTER_LINEAR)
    # Camera-frame points through the centers of interior resized pixels.
    cols, rows = np.meshgrid(np.arange(3, 57), np.arange(3, 42))
    rays = np.linalg.inv(resized.intrinsics) @ np.stack([cols.ravel(), rows.ravel(), np.ones(cols.size)])
    xyz = (rays * 4.0).T
    original = pixel(camera, xyz)
    np.testing.assert_allclose(original[:, 0], sampled_u[rows.ravel(), cols.ravel()], atol=1e-4)
    np.testing.assert_allclose(original[:, 1], sampled_v[rows.ravel(), cols.ravel()], atol=1e-4)


def test_halving_maps_each_2x2_block_to_one_pixel():
    # One point per 2x2 block, anywhere inside it: at half size it lands on pixel (row // 2, col // 2).
    rng = np.random.default_rng(2)
    blocks = rng.choice(320 * 240, size=500, replace=False)
    u = 2 * (blocks % 320) + rng.uniform(-0.49, 1.49, blocks.size)
    v = 2 * (blocks // 320) + rng.uniform(-0.49, 1.49, blocks.size)
    z = rng.uniform(1, 20, blocks.size)
    xyz = (np.linalg.inv(K) @ np.stack([u, v, np.ones_like(u)])).T * z[:, None]
    full = project_points(xyz, np.eye(4), CAMERA)
    half = project_points(xyz, np.eye(4), CAMERA.resized(320, 240))
    rows, cols = np.nonzero(full.index >= 0)
    assert rows.size == blocks.size
    np.testing.assert_array_equal(half.index[rows // 2, cols // 2], full.index[rows, cols])
    np.testing.assert_array_equal(half.depth[rows // 2, cols // 2], full.depth[rows, cols])


def test_resize_keeps_the_baseline():
    right = CameraModel.from_matrices(640, 480, K, np.c_[K, [-500.0 * 0.12, 0, 0]])
    assert right.resized(320, 240).baseline == pytest.approx(0.12)


# --- YAML calibration -------------------------------------------------------------------------------------------

T_CAM_LIDAR = np.array([[0, -1, 0, 0.1], [0, 0, -1, -0.2], [1, 0, 0, -0.3], [0, 0, 0, 1]], dtype=float)
RIGHT_P = np.c_[K, [-500.0 * 0.3, 0, 0]]


def write_yaml(tmp_path, data: dict, name: str = "rig.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def full_rig() -> dict:
    return {
        "width": 640,
        "height": 480,
        "K": K.ravel().tolist(),  # flat list
        "D": [0.1, -0.05, 0.0, 0.0, 0.01],
        "T_cam_lidar": T_CAM_LIDAR.tolist(),  # nested list
        "right": {"K": K.tolist(), "P": RIGHT_P.ravel().tolist()},
    }


def test_yaml_calibration_with_lidar_and_stereo(tmp_path):
    calibration = load_calibration(write_yaml(tmp_path, full_rig()))
    assert isinstance(calibration, Calibration)
    assert calibration.camera.shape == (480, 640)
    np.testing.assert_array_equal(calibration.camera.K, K)
    np.testing.assert_array_equal(calibration.camera.P, np.c_[K, np.zeros(3)])
    np.testing.assert_array_equal(calibration.camera.D, [0.1, -0.05, 0.0, 0.0, 0.01])
    np.testing.assert_array_equal(calibration.T_cam_lidar, T_CAM_LIDAR)
    assert calibration.right_camera.baseline == pytest.approx(0.3)
    assert calibration.right_camera.shape == (480, 640)


def test_yaml_calibration_camera_only(tmp_path):
    calibration = load_any_calibration(write_yaml(tmp_path, {"width": 64, "height": 48, "K": K.tolist()}, "c.yml"))
    assert calibration.T_cam_lidar is None and calibration.right_camera is None
    assert calibration.camera.shape == (48, 64)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"K": None}, r"rig\.yaml: K: missing"),
        ({"K": [1, 2, 3]}, r"rig\.yaml: K: expected 9 numbers or a 3x3 matrix, got \(3,\)"),
        ({"K": ["a"] * 9}, r"rig\.yaml: K: expected 9 numbers, got \['a'"),
        ({"P": [[1, 2, 3, 4]] * 4}, r"rig\.yaml: P: expected 12 numbers or a 3x4 matrix, got \(4, 4\)"),
        ({"width": 0}, r"rig\.yaml: width: expected a positive integer, got 0"),
        ({"width": True}, r"rig\.yaml: width: expected a positive integer, got True"),
        ({"height": None}, r"rig\.yaml: height: expected a positive integer, got None"),
        ({"T_cam_lidar": np.eye(4)[:3].tolist()}, r"T_cam_lidar: expected 16 numbers or a 4x4 matrix, got \(3, 4\)"),
        ({"T_cam_lidar": (2 * T_CAM_LIDAR).tolist()}, "T_cam_lidar: expected a rigid transform"),
        ({"T_cam_lidar": T_CAM_LIDAR.T.tolist()}, "T_cam_lidar: expected a rigid transform"),
        ({"T_lidar_cam": T_CAM_LIDAR.tolist()}, r"rig\.yaml: unknown key\(s\) \['T_lidar_cam'\]"),
        ({"right": {"K": K.tolist()}}, r"rig\.yaml: right P: missing \(the right camera's P carries the stereo"),
        ({"right": {"K": K.tolist(), "P": RIGHT_P.tolist(), "R": 1}}, r"right unknown key\(s\) \['R'\]"),
        ({"right": {"K": np.zeros(9).tolist(), "P": RIGHT_P.tolist()}}, "right camera K has a non-positive focal"),
        ({"D": "none"}, r"rig\.yaml: D: expected a list of numbers, got 'none'"),
    ],
)
def test_yaml_calibration_errors_name_file_and_key(tmp_path, change, match):
    data = full_rig() | change
    data = {k: v for k, v in data.items() if v is not None or k == "height"}
    with pytest.raises(ValueError, match=match):
        load_calibration(write_yaml(tmp_path, data))


def test_yaml_that_is_not_a_mapping_or_not_yaml(tmp_path):
    path = tmp_path / "rig.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match=r"rig\.yaml: expected a mapping of keys, got list"):
        load_calibration(path)
    path.write_text("K: [1, 2\n")
    with pytest.raises(ValueError, match=r"rig\.yaml: not valid YAML"):
        load_calibration(path)


def test_any_calibration_dispatch_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unsupported calibration file type '\.json'"):
        load_any_calibration(tmp_path / "rig.json")
    (tmp_path / "calib.txt").write_text("P2: 1 0 0 0 0 1 0 0 0 0 1 0\n")
    with pytest.raises(ValueError, match=r"calib\.txt: a KITTI calibration does not hold the image size"):
        load_any_calibration(tmp_path / "calib.txt")


def test_any_calibration_reads_kitti_as_a_stereo_rig(kitti_object):
    calibration = load_any_calibration(kitti_object / "calib" / "000000.txt", image_size=(1224, 370))
    assert calibration.camera.fx == pytest.approx(707.0493)
    assert calibration.camera.shape == (370, 1224)
    # Camera 3 sits ~0.54 m right of camera 2.
    assert calibration.right_camera.baseline - calibration.camera.baseline == pytest.approx(0.537, abs=2e-3)
    assert calibration.T_cam_lidar.shape == (4, 4)
