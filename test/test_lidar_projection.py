"""project_points: hand-computed pixels, the z-buffer, what gets dropped, and the real KITTI chain."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from depth_panoptic_ros.data.kitti import read_kitti_calib, read_velodyne_bin
from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.geometry.lidar import project_points

# fx = fy = 100, principal point (2, 1) in a 5 x 4 image.
K = np.array([[100.0, 0, 2], [0, 100, 1], [0, 0, 1]])
CAMERA = CameraModel.from_matrices(5, 4, K)
IDENTITY = np.eye(4)

# LiDAR axes (x forward, y left, z up) -> camera optical axes (x right, y down, z forward), lidar 0.3 m above.
T_OPTICAL = np.array([[0, -1, 0, 0], [0, 0, -1, 0.3], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def filled(projection) -> dict[tuple[int, int], tuple[float, int]]:
    rows, cols = np.nonzero(projection.depth)
    return {
        (int(r), int(c)): (float(projection.depth[r, c]), int(projection.index[r, c]))
        for r, c in zip(rows, cols, strict=True)
    }


def test_hand_computed_pixel_and_depth():
    # u = 100 * 0.026 / 2 + 2 = 3.3 -> column 3; v = 100 * 0.014 / 2 + 1 = 1.7 -> row 2.
    projection = project_points(np.array([[0.026, 0.014, 2.0]], np.float32), IDENTITY, CAMERA)
    assert filled(projection) == {(2, 3): (pytest.approx(2.0), 0)}
    assert projection.depth.dtype == np.float32 and projection.index.dtype == np.int32
    assert projection.depth.shape == projection.index.shape == (4, 5)
    assert np.count_nonzero(projection.index >= 0) == 1


@pytest.mark.parametrize(
    ("u", "column"),
    [(3.49, 3), (3.51, 4), (-0.49, 0), (4.49, 4)],
)
def test_pixel_centers_at_integer_coordinates(u, column):
    x = (u - 2.0) / 100.0  # at z = 1 the pixel coordinate is u
    projection = project_points(np.array([[x, 0.0, 1.0]]), IDENTITY, CAMERA)
    assert list(filled(projection)) == [(1, column)]


@pytest.mark.parametrize("u", [-0.51, 4.51])
def test_points_beyond_the_border_pixel_centers_are_outside(u):
    projection = project_points(np.array([[(u - 2.0) / 100.0, 0.0, 1.0]]), IDENTITY, CAMERA)
    assert not projection.depth.any() and np.all(projection.index == -1)


def test_extrinsic_moves_points_into_the_optical_frame():
    # LiDAR (5, -0.05, 0.3) -> camera (0.05, -0.3 + 0.3, 5): u = 100 * 0.05 / 5 + 2 = 3, v = 1.
    projection = project_points(np.array([[5.0, -0.05, 0.3]]), T_OPTICAL, CAMERA)
    assert filled(projection) == {(1, 3): (pytest.approx(5.0), 0)}


def test_fourth_column_of_P_is_honored():
    # A right camera 0.5 m to the right: P[0, 3] = -fx * B; P[2, 3] shifts the depth (as KITTI's P2 does).
    P = np.hstack([K, [[-100.0 * 0.5], [0.0], [0.01]]])
    camera = CameraModel.from_matrices(5, 4, K, P)
    # X = (0.5, 0, 2): w = 2 + 0.01 = 2.01, u = (100 * 0.5 + 2 * 2 - 50) / 2.01 = 1.99 -> column 2,
    # v = 2 / 2.01 = 0.995 -> row 1.
    projection = project_points(np.array([[0.5, 0.0, 2.0]]), IDENTITY, camera)
    assert filled(projection) == {(1, 2): (pytest.approx(2.01), 0)}


def test_z_buffer_keeps_the_nearest_point_and_its_index():
    points = np.array(
        [
            [0.0, 0.0, 4.0],  # pixel (1, 2), far
            [0.0, 0.0, 2.0],  # same pixel, nearer -> wins
            [0.0, 0.0, 3.0],  # same pixel, in between
            [0.02, 0.0, 2.0],  # pixel (1, 3), alone
        ],
        np.float32,
    )
    assert filled(project_points(points, IDENTITY, CAMERA)) == {
        (1, 2): (pytest.approx(2.0), 1),
        (1, 3): (pytest.approx(2.0), 3),
    }
    # The winner does not depend on the order of the input.
    reordered = points[[1, 3, 0, 2]]
    assert filled(project_points(reordered, IDENTITY, CAMERA)) == {
        (1, 2): (pytest.approx(2.0), 0),
        (1, 3): (pytest.approx(2.0), 1),
    }


def test_equal_depths_in_a_pixel_go_to_the_lower_point_index():
    points = np.array([[0.02, 0.0, 2.0], [0.0, 0.0, 3.0], [0.0, 0.0, 3.0], [0.02, 0.0, 2.0]], np.float32)
    assert filled(project_points(points, IDENTITY, CAMERA)) == {
        (1, 2): (pytest.approx(3.0), 1),
        (1, 3): (pytest.approx(2.0), 0),
    }


def test_huge_and_non_finite_coordinates_are_dropped_without_warnings():
    points = np.array([[1e200, 0.0, 2.0], [0.0, -np.inf, np.nan], [np.inf, np.inf, np.inf], [0.0, 0.0, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert filled(project_points(points, IDENTITY, CAMERA)) == {(1, 2): (pytest.approx(2.0), 3)}


def test_invalid_points_are_dropped():
    points = np.array(
        [
            [np.nan, 0.0, 2.0, 0.0],
            [0.0, np.inf, 2.0, 0.0],
            [0.0, 0.0, -2.0, 0.0],  # behind the camera
            [0.0, 0.0, 0.05, 0.0],  # closer than min_depth
            [0.5, 0.0, 2.0, 0.0],  # u = 27: right of the image
            [0.0, -0.5, 2.0, 0.0],  # v = -24: above the image
            [0.0, 0.0, 130.0, 0.0],  # beyond max_range
            [0.0, 0.012, 2.0, 0.7],  # the only valid point: v = 1.6 -> row 2, u = 2
        ],
        np.float32,
    )
    assert filled(project_points(points, IDENTITY, CAMERA)) == {(2, 2): (pytest.approx(2.0), 7)}
    far = filled(project_points(points, IDENTITY, CAMERA, max_range=200.0))
    assert far[(1, 2)] == (pytest.approx(130.0), 6)
    assert len(far) == 2


def test_intensity_column_is_ignored():
    xyz = np.array([[0.0, 0.0, 2.0], [0.02, 0.01, 3.0]], np.float32)
    with_intensity = np.hstack([xyz, np.array([[0.3], [0.9]], np.float32)])
    a, b = project_points(xyz, IDENTITY, CAMERA), project_points(with_intensity, IDENTITY, CAMERA)
    np.testing.assert_array_equal(a.depth, b.depth)
    np.testing.assert_array_equal(a.index, b.index)


@pytest.mark.parametrize("columns", [3, 4])
def test_empty_input_gives_an_empty_map(columns):
    projection = project_points(np.zeros((0, columns), np.float32), IDENTITY, CAMERA)
    assert projection.depth.shape == (4, 5) and not projection.depth.any()
    assert np.all(projection.index == -1)


@pytest.mark.parametrize(
    ("points", "T", "match"),
    [
        (np.zeros((3, 2)), IDENTITY, r"points: expected shape \(N, 3\) or \(N, 4\+\), got \(3, 2\)"),
        (np.zeros(3), IDENTITY, r"points: .*got \(3,\)"),
        (np.zeros((3, 3)), np.eye(4)[:3], r"T_cam_lidar: expected a finite 4x4 matrix, got shape \(3, 4\)"),
        (np.zeros((3, 3)), np.full((4, 4), np.nan), "T_cam_lidar"),
    ],
)
def test_bad_input_is_a_clear_error(points, T, match):
    with pytest.raises(ValueError, match=match):
        project_points(points, T, CAMERA)


def test_non_positive_limits_are_rejected():
    with pytest.raises(ValueError, match="max_range and min_depth must be positive"):
        project_points(np.zeros((1, 3)), IDENTITY, CAMERA, min_depth=0.0)


def _kitti_matrices(calib_file) -> dict[str, np.ndarray]:
    """An independent reading of the calib file, for the manual P2 . R0 . Tr . X chain."""
    rows = dict(line.split(":", 1) for line in calib_file.read_text().splitlines() if ":" in line)
    return {key: np.array(value.split(), dtype=np.float64) for key, value in rows.items()}


def test_kitti_frame_projects_like_the_devkit(kitti_object):
    points = read_velodyne_bin(kitti_object / "velodyne" / "000000.bin")
    camera, T = read_kitti_calib(kitti_object / "calib" / "000000.txt", image_size=(1224, 370))
    projection = project_points(points, T, camera)

    m = _kitti_matrices(kitti_object / "calib" / "000000.txt")
    R0, Tr = np.eye(4), np.eye(4)
    R0[:3, :3] = m["R0_rect"].reshape(3, 3)
    Tr[:3] = m["Tr_velo_to_cam"].reshape(3, 4)
    homogeneous = np.hstack([points[:, :3].astype(np.float64), np.ones((len(points), 1))])
    uvw = (m["P2"].reshape(3, 4) @ R0 @ Tr @ homogeneous.T).T
    w = uvw[:, 2]
    ahead = w >= 0.1
    u, v = uvw[ahead, 0] / w[ahead], uvw[ahead, 1] / w[ahead]
    inside = (u >= -0.5) & (u < 1223.5) & (v >= -0.5) & (v < 369.5)
    assert 18_000 <= inside.sum() <= 21_000  # the sample data's README: about 18k-20k points in the image
    # Independent z-buffer: minimum depth per pixel with np.minimum.at.
    pixel = np.floor(v[inside] + 0.5).astype(int) * 1224 + np.floor(u[inside] + 0.5).astype(int)
    expected = np.full(370 * 1224, np.inf)
    np.minimum.at(expected, pixel, w[ahead][inside])
    expected[np.isinf(expected)] = 0
    np.testing.assert_allclose(projection.depth.ravel(), expected, rtol=1e-6)

    valid = projection.depth > 0
    assert 17_000 <= valid.sum() <= 21_000
    assert 3.0 < projection.depth[valid].min() and projection.depth[valid].max() < 90.0
    assert 5.0 < np.median(projection.depth[valid]) < 40.0
    # The winning index points at a point that projects into its pixel at the stored depth.
    row, col = np.argwhere(valid)[len(np.argwhere(valid)) // 2]
    winner = projection.index[row, col]
    assert uvw[winner, 2] == pytest.approx(projection.depth[row, col], rel=1e-6)
    assert np.floor(uvw[winner, 0] / uvw[winner, 2] + 0.5) == col
    assert np.floor(uvw[winner, 1] / uvw[winner, 2] + 0.5) == row
    # Index and depth maps agree everywhere.
    np.testing.assert_array_equal(valid, projection.index >= 0)


def _sorted_projection(points: np.ndarray, T: np.ndarray, camera: CameraModel, max_range: float, min_depth: float):
    """The z-buffer written with numpy: all points projected, then a lexsort by pixel and depth and the first of
    each pixel (the nearest, the lower point index on a tie)."""
    xyz = points[:, :3].astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        keep = (xyz * xyz).sum(axis=1) <= max_range**2
        uvw = xyz @ (camera.P @ T)[:, :3].T + (camera.P @ T)[:, 3]
        keep &= uvw[:, 2] >= min_depth
        col, row = np.floor(uvw[:, 0] / uvw[:, 2] + 0.5), np.floor(uvw[:, 1] / uvw[:, 2] + 0.5)
    keep &= (col >= 0) & (col < camera.width) & (row >= 0) & (row < camera.height)
    index = np.flatnonzero(keep)
    pixel = (row[index] * camera.width + col[index]).astype(np.int64)
    order = np.lexsort((index, uvw[index, 2], pixel))
    first = np.ones(len(order), bool)
    first[1:] = pixel[order][1:] != pixel[order][:-1]
    winners = order[first]
    depth = np.zeros(camera.shape, np.float32)
    depth.ravel()[pixel[winners]] = uvw[index[winners], 2]
    return depth, pixel[winners], index[winners]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_z_buffer_equals_a_sorting_transcription(dtype):
    """Thousands of points on a coarse grid (exact in both float types, so that no FMA question arises) that hit
    the same pixels at equal and different depths, out of order, with NaN / inf rows, points behind the camera,
    beyond max_range and outside the image: the same depth image, winning pixels and points as the sort."""
    rng = np.random.default_rng(5)
    camera = CameraModel.from_matrices(23, 17, [[8.0, 0, 11.0], [0, 8.0, 8.5], [0, 0, 1]])
    points = np.column_stack([rng.integers(-40, 41, (4000, 3)) / 8.0, rng.random(4000)]).astype(dtype)
    points[:, 0] += 10.0  # mostly in front (camera z = lidar x)
    points[rng.random(4000) < 0.02, rng.integers(0, 3)] = np.nan
    points[rng.random(4000) < 0.02, 1] = -np.inf
    points = np.vstack([points, points[::7]])  # exact repeats: ties go to the lower index
    T = np.array([[0, -1, 0, 0], [0, 0, -1, 0.25], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
    for max_range, min_depth in ((120.0, 0.1), (11.0, 7.5)):
        got = project_points(points, T, camera, max_range=max_range, min_depth=min_depth)
        depth, pixel, point = _sorted_projection(points, T, camera, max_range, min_depth)
        assert 0 < len(pixel) < camera.width * camera.height
        assert np.array_equal(got.depth, depth)
        order = np.argsort(got.pixel)  # the winners come in the order their pixels were first hit
        assert np.array_equal(got.pixel[order], pixel)
        assert np.array_equal(got.point[order], point)
