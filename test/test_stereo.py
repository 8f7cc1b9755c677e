"""stereo_depth on a synthetic textured fronto-parallel plane, its validation, and merge_depth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.geometry.stereo import StereoConfig, merge_depth, stereo_depth

WIDTH, HEIGHT = 200, 60
FX = 100.0
K = np.array([[FX, 0, 99.5], [0, FX, 29.5], [0, 0, 1]])
CONFIG = StereoConfig(num_disparities=32, block_size=5)


def camera(x_offset_m: float = 0.0, cx: float = 99.5) -> CameraModel:
    """A rectified camera x_offset_m to the right of the reference: P[0, 3] = -fx * offset."""
    k = K.copy()
    k[0, 2] = cx
    return CameraModel.from_matrices(WIDTH, HEIGHT, k, np.c_[k, [-FX * x_offset_m, 0, 0]])


def plane_pair(shift: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured plane seen by both cameras: the right image is the left one moved `shift` pixels left."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (HEIGHT, WIDTH + shift, 3), dtype=np.uint8), (3, 3), 0.8)
    return texture[:, :WIDTH].copy(), texture[:, shift:].copy()


def interior(depth: np.ndarray) -> np.ndarray:
    """Pixels the matcher can see in both images (left border of num_disparities columns, block margins)."""
    return depth[4:-4, CONFIG.num_disparities + 4 : -4]


@pytest.mark.parametrize("shift", [8, 12, 20])
def test_plane_depth_is_fx_baseline_over_disparity(shift):
    left, right = plane_pair(shift)
    depth = stereo_depth(left, right, camera(), camera(0.5), CONFIG)
    assert depth.dtype == np.float32 and depth.shape == (HEIGHT, WIDTH)
    inner = interior(depth)
    expected = FX * 0.5 / shift
    assert np.mean(np.isclose(inner, expected, rtol=0.01)) > 0.95
    assert np.median(inner) == pytest.approx(expected, rel=1e-3)
    assert not depth[:, : CONFIG.num_disparities - 1].any()  # no match possible there


def test_baseline_is_the_difference_of_the_two_P_matrices():
    # KITTI-style: both cameras offset from a reference camera 0 (left 0.06 m left of it, right 0.48 m right).
    left, right = plane_pair(12)
    depth = stereo_depth(left, right, camera(-0.06), camera(0.48), CONFIG)
    assert np.median(interior(depth)) == pytest.approx(FX * 0.54 / 12, rel=1e-3)


def test_principal_point_offset_is_subtracted_from_the_disparity():
    # With cx_right = cx_left - 2, a 12-pixel image shift is a geometric disparity of 10.
    left, right = plane_pair(12)
    depth = stereo_depth(left, right, camera(), camera(0.5, cx=97.5), CONFIG)
    assert np.median(interior(depth)) == pytest.approx(FX * 0.5 / 10, rel=1e-3)


def test_gray_input_and_depth_limits():
    left, right = plane_pair(10)
    gray_left, gray_right = (cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in (left, right))
    depth = stereo_depth(gray_left, gray_right, camera(), camera(0.5), CONFIG)
    np.testing.assert_array_equal(depth, stereo_depth(left, right, camera(), camera(0.5), CONFIG))
    # The plane is at 5 m: a 4 m depth ceiling removes it.
    limited = StereoConfig(num_disparities=32, block_size=5, max_depth=4.0)
    assert not stereo_depth(left, right, camera(), camera(0.5), limited).any()


def test_defaults_follow_opencv_and_the_paper():
    config = StereoConfig()
    assert config.num_disparities % 16 == 0 and config.block_size % 2 == 1
    assert (config.p1, config.p2) == (8 * config.block_size**2, 32 * config.block_size**2)
    assert (config.min_depth, config.max_depth) == (1.0, 500.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_disparities": 40}, "num_disparities must be a positive multiple of 16, got 40"),
        ({"num_disparities": 0}, "num_disparities"),
        ({"block_size": 4}, "block_size must be odd and >= 1, got 4"),
        ({"mode": "fast"}, "mode must be one of"),
        ({"min_depth": 10.0, "max_depth": 5.0}, "need 0 < min_depth < max_depth, got 10.0 and 5.0"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StereoConfig(**kwargs)


def test_bad_pairs_are_clear_errors():
    left, right = plane_pair(10)
    with pytest.raises(ValueError, match=r"stereo baseline must be positive .* got 0.0 m"):
        stereo_depth(left, right, camera(), camera(), CONFIG)
    with pytest.raises(ValueError, match="got -0.5 m; is the right camera's P missing or are the cameras swapped"):
        stereo_depth(left, right, camera(0.5), camera(), CONFIG)
    with pytest.raises(
        ValueError, match=r"right image: expected uint8 .* H, W = \(60, 200\), got uint8 \(60, 190, 3\)"
    ):
        stereo_depth(left, right[:, :190], camera(), camera(0.5), CONFIG)
    with pytest.raises(ValueError, match=r"left image: expected uint8 .*got float32"):
        stereo_depth(left.astype(np.float32), right, camera(), camera(0.5), CONFIG)
    small = CameraModel.from_matrices(100, 60, K, np.c_[K, [-50.0, 0, 0]])
    with pytest.raises(ValueError, match=r"stereo cameras differ in size: left \(60, 200\), right \(60, 100\)"):
        stereo_depth(left, right, camera(), small, CONFIG)
    zoomed = CameraModel.from_matrices(WIDTH, HEIGHT, K * [[2], [2], [1]], np.c_[K * [[2], [2], [1]], [-100, 0, 0]])
    with pytest.raises(ValueError, match="stereo pair is not rectified"):
        stereo_depth(left, right, camera(), zoomed, CONFIG)


def test_merge_prefers_lidar_where_it_has_a_return():
    lidar = np.array([[0.0, 5.0], [7.0, 0.0]], np.float32)
    stereo = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)
    merged = merge_depth(lidar, stereo)
    assert merged.dtype == np.float32
    np.testing.assert_array_equal(merged, [[3.0, 5.0], [7.0, 0.0]])
    with pytest.raises(ValueError, match=r"depth maps differ in shape: lidar \(2, 2\), stereo \(1, 2\)"):
        merge_depth(lidar, stereo[:1])
