"""The thing geometry check: the ground fitted to measured depth, grid heights, mask quantiles against numpy,
the limits on hand-built cases, both merges freeing failing things to stuff, and the shipped model on a real
KITTI frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from depth_panoptic_ros.classes import ClassInfo, ClassTable
from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.geometry.ground import GroundPlane, fit_ground_plane, grid_depth, grid_heights, grid_samples
from depth_panoptic_ros.panoptic.merge import MergeConfig, merge_panoptic
from depth_panoptic_ros.panoptic.thing_geometry import (
    ThingGeometryCheck,
    ThingGeometryConfig,
    class_limits,
    hidden_bottoms,
    label_quantiles,
    plausible_things,
)

torch.set_num_threads(1)
KITTI = CameraModel.from_matrices(1242, 375, [[721.5, 0, 609.6], [0, 721.5, 172.9], [0, 0, 1]])


def _rotation(pitch: float, roll: float) -> np.ndarray:
    cp, sp, cr, sr = np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    about_x = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    about_z = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return about_z @ about_x


def _ground_depth(normal: np.ndarray, offset: float, camera: CameraModel) -> np.ndarray:
    """Depth of the plane ``normal @ X + offset = 0`` along every pixel's ray (0 where the ray misses it)."""
    v, u = np.mgrid[: camera.height, : camera.width]
    rays = np.stack(((u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones(u.shape)), axis=-1)
    along = rays @ normal
    z = np.where(along < -1e-6, -offset / np.where(along < -1e-6, along, -1.0), 0.0)
    return np.where(z < 80, z, 0.0)


def test_the_ground_under_a_pitched_camera_is_found_among_walls_and_noise() -> None:
    normal = _rotation(np.radians(3.0), np.radians(-2.0)) @ np.array([0.0, -1.0, 0.0])
    depth = _ground_depth(normal, 1.65, KITTI)
    rng = np.random.default_rng(7)
    sparse = np.where(rng.random(depth.shape) < 0.06, depth, 0.0)  # a LiDAR's share of the pixels
    sparse[sparse > 0] += rng.normal(0, 0.03, np.count_nonzero(sparse))
    sparse[200:375, 900:1100] = np.where(rng.random((175, 200)) < 0.3, 9.0, 0.0)  # a wall of a near building
    plane = fit_ground_plane(sparse.astype(np.float32), KITTI)
    assert plane is not None
    assert np.degrees(np.arccos(np.clip(plane.normal @ normal, -1, 1))) < 0.3
    assert plane.offset == pytest.approx(1.65, abs=0.03)
    assert fit_ground_plane(np.zeros((375, 1242), np.float32), KITTI) is None


def test_a_principal_point_above_or_below_the_image() -> None:
    """A cropped camera's principal point may lie outside the image: every row is then below (or above) it."""
    for cy, found in ((-40.0, True), (420.0, False)):
        camera = CameraModel.from_matrices(1242, 375, [[721.5, 0, 609.6], [0, 721.5, cy], [0, 0, 1]])
        depth = _ground_depth(np.array([0.0, -1.0, 0.0]), 1.65, camera)
        sparse = np.where(np.random.default_rng(2).random(depth.shape) < 0.05, depth, 0.0).astype(np.float32)
        plane = fit_ground_plane(sparse, camera)
        assert (plane is not None) == found
        if found:
            assert plane.offset == pytest.approx(1.65, abs=0.01)


@pytest.mark.parametrize("skew", [0.0, 3.5])
def test_the_fits_kernels_are_the_numpy_expressions_they_replace(skew: float) -> None:
    """The sampled points and the candidates' support, bit for bit (the plane then is too: the same values
    enter the same numpy steps)."""
    from depth_panoptic_ros.geometry.backproject import pixel_rays
    from depth_panoptic_ros.geometry.ground_compiled import count_support, sample_points

    camera = CameraModel.from_matrices(1242, 375, [[721.5, skew, 609.6], [0, 721.5, 172.9], [0, 0, 1]])
    rng = np.random.default_rng(5)
    depth = np.where(rng.random((375, 1242)) < 0.07, rng.uniform(2, 80, (375, 1242)), 0).astype(np.float32)
    top = 173
    pick = rng.permutation(np.flatnonzero(depth[top:] > 0))[:4000]
    ray_x, ray_y = pixel_rays(camera)
    rows, cols = np.divmod(pick, depth.shape[1])
    rows += top
    z = depth[rows, cols].astype(np.float64)
    expected = np.stack((np.broadcast_to(ray_x, depth.shape)[rows, cols] * z, ray_y[rows, 0] * z, z), axis=1)
    points = np.empty((len(pick), 3))
    sample_points(depth, ray_x, ray_y, pick, top, points)
    np.testing.assert_array_equal(points, expected)

    distance = rng.normal(0, 1, (1000, 128)).astype(np.float32)
    offsets = rng.normal(0, 1, 128).astype(np.float32)
    distance[::7] = 0.15 - offsets  # on the limit: |0.15| <= float32(0.15) in float32, as numpy compares
    support = np.empty(128, np.int64)
    count_support(distance, offsets, np.float32(0.15), support)
    np.testing.assert_array_equal(support, (np.abs(distance + offsets) <= 0.15).sum(axis=0))


def test_a_wall_alone_is_no_ground() -> None:
    sparse = np.zeros((375, 1242), np.float32)
    sparse[180:, ::3] = 12.0  # a fronto-parallel wall filling the lower half: its normal is the optical axis
    assert fit_ground_plane(sparse, KITTI) is None


def test_one_lidar_ring_on_a_round_wall_is_no_ground() -> None:
    """A sweep that hits only a cylindrical wall: each ring is a level circle, and a plane through one fits ~5 %
    of the points, less than MIN_SHARE; with the ground in view the road holds most of them."""
    from depth_panoptic_ros.bench.geometry import T_CAM_LIDAR, lidar_sweep
    from depth_panoptic_ros.geometry.lidar import project_points

    camera = CameraModel.from_matrices(160, 96, [[100.0, 0, 79.5], [0, 100.0, 47.5], [0, 0, 1]])
    for height, found in ((1e3, False), (1.5, True)):
        sparse = project_points(lidar_sweep(32, 720, height=height, wall=15.0), T_CAM_LIDAR, camera).depth
        plane = fit_ground_plane(sparse, camera)
        assert (plane is not None) == found
    assert plane.offset == pytest.approx(1.2, abs=0.05)  # the LiDAR 1.5 m up, the camera 0.3 m below it


def test_the_plane_of_a_ground_transform_gives_its_heights() -> None:
    ground_T_camera = np.eye(4)
    # camera optical (x right, y down, z forward) -> ground (x forward, y left, z up), 1.2 m high, pitched
    ground_T_camera[:3, :3] = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]]) @ _rotation(np.radians(4.0), 0.0).T
    ground_T_camera[:3, 3] = (0.3, 0.1, 1.2)
    plane = GroundPlane.from_transform(ground_T_camera)
    points = np.random.default_rng(1).normal(0, 5, (50, 3))
    expected = (points @ ground_T_camera[:3, :3].T + ground_T_camera[:3, 3])[:, 2]
    np.testing.assert_allclose(plane.heights(points), expected, atol=1e-9)


def test_grid_heights_by_hand() -> None:
    camera = CameraModel.from_matrices(10, 9, [[2.0, 0, 4.0], [0, 2.0, 3.0], [0, 0, 1]])
    depth = np.arange(90, dtype=np.float32).reshape(9, 10) / 10
    depth[5, 6] = 0.0
    plane = GroundPlane(np.array([0.0, -1.0, 0.0]), 1.5)
    heights = grid_heights(grid_depth(depth, 4), camera, plane, stride=4)
    assert grid_samples(9, 4).tolist() == [2, 6, 8] and grid_samples(10, 4).tolist() == [2, 6, 9]
    for i, row in enumerate((2, 6, 8)):
        for j, col in enumerate((2, 6, 9)):
            z = depth[row, col]
            want = np.nan if z == 0 else 1.5 - (row - 3.0) * z / 2.0
            np.testing.assert_allclose(heights[i, j], want, rtol=1e-6)
    assert not np.isnan(heights).any()  # (5, 6) has no depth but is no sample; (6, 6) is
    depth[6, 6] = 0.0
    assert np.isnan(grid_heights(grid_depth(depth, 4), camera, plane, stride=4)[1, 1])


def test_grid_depth_reads_the_grid_samples_for_every_size() -> None:
    """A strided view where the cells' centers are regular, the clipped samples where the last one is not."""
    rng = np.random.default_rng(5)
    for height in range(5, 21):
        for width in (7, 8, 9, 10):
            depth = rng.random((height, width)).astype(np.float32)
            for stride in (1, 2, 4):
                samples = depth[grid_samples(height, stride)[:, None], grid_samples(width, stride)[None, :]]
                np.testing.assert_array_equal(grid_depth(depth, stride), samples)


def test_label_quantiles_are_numpys_inverted_cdf() -> None:
    rng = np.random.default_rng(3)
    heights = rng.normal(1.0, 2.0, (12, 17)).astype(np.float32)
    heights[rng.random(heights.shape) < 0.2] = np.nan
    labels = rng.integers(-1, 7, heights.shape)
    labels[labels == 6] = 4  # label 6 holds no pixel, label 7 (of 8) none either
    labels[np.isnan(heights)] = np.where(rng.random(np.count_nonzero(np.isnan(heights))) < 0.5, 5, -1)
    labels[(labels == 5) & ~np.isnan(heights)] = 3  # label 5 holds only unknown heights
    got = label_quantiles(torch.from_numpy(labels), 8, torch.from_numpy(heights), (0.05, 0.5, 0.95)).numpy()
    assert got.shape == (8, 3) and np.isnan(got[5:]).all()
    for k in range(5):
        values = heights[(labels == k) & ~np.isnan(heights)]
        assert len(values) > 0
        want = np.percentile(values, [5, 50, 95], method="inverted_cdf")
        np.testing.assert_allclose(got[k], want, rtol=1e-6)
    nothing = torch.full((3, 4), torch.nan)
    assert torch.isnan(label_quantiles(torch.zeros((3, 4), dtype=torch.long), 2, nothing, (0.5,))).all()


CITYSCAPES = ClassTable.cityscapes()


def _classes(*names: str) -> torch.Tensor:
    return torch.tensor([CITYSCAPES.names.index(name) for name in names])


def test_the_limits_on_hand_built_things() -> None:
    """Heights fall one row at a time on a 20-row grid; thing k covers a band of rows in columns 4k..4k+3 (the
    last of each without depth); everything else is far background."""
    names = ["car", "car", "car", "car", "truck", "person", "rider", "bicycle", "car"]
    bands = [(1.6, -0.3), (2.0, 0.6), (0.3, -0.3), (4.0, -0.3), (4.0, -0.3), None, (1.9, 0.6), (0.75, -0.3)]
    heights = torch.linspace(5.0, -0.3, 20)[:, None].repeat(1, 4 * len(names))
    heights[:, 3::4] = torch.nan
    labels = torch.full(heights.shape, -1, dtype=torch.long)
    for k, band in enumerate(bands):
        part = heights[:, 4 * k : 4 * k + 4]
        inside = torch.isnan(part) if band is None else (part <= band[0]) & (part >= band[1])
        labels[:, 4 * k : 4 * k + 4][inside | (torch.isnan(part) & (torch.arange(20)[:, None] < 2))] = k
    car = heights[:, 32:36]
    labels[:, 32:36] = torch.where((car >= 0.6) & (car <= 1.9), 8, -1)
    depth = torch.full(heights.shape, 30.0)
    depth[:, 32:36] = 10.0
    depth[:, 32:36][car < 0.6] = 5.0  # a nearer object hides car 8's bottom
    check = ThingGeometryCheck(depth.numpy(), heights.numpy(), ThingGeometryConfig())
    ok = plausible_things(labels, _classes(*names), CITYSCAPES, check)
    # standing car / floating car / flat on the road / car as tall as a truck / that truck / unmeasured person /
    # rider on pedals / bicycle (its own lower floor) / car whose bottom a nearer object hides
    assert ok.tolist() == [True, False, False, False, True, True, True, True, True]
    depth[:, 32:36][car < 0.6] = 10.0  # nothing nearer below: the same car floats
    check = ThingGeometryCheck(depth.numpy(), heights.numpy(), ThingGeometryConfig())
    assert not plausible_things(labels, _classes(*names), CITYSCAPES, check)[8]
    loose = ThingGeometryCheck(depth.numpy(), heights.numpy(), ThingGeometryConfig(max_ground_gap_m=1.0))
    assert plausible_things(labels, _classes(*names), CITYSCAPES, loose).tolist()[:3] == [True, True, False]
    floor, ceiling, grounded = class_limits(("car", "bicycle", "rider", "unknown"), ThingGeometryConfig(), "cpu")
    np.testing.assert_allclose(floor, [0.8, 0.5, 0.8, 0.8], rtol=1e-6)
    assert ceiling.tolist() == [3.0, 2.0, 2.5, float("inf")]
    assert grounded.tolist() == [True, True, False, True]
    with pytest.raises(ValueError, match="things.min_height_m"):
        ThingGeometryConfig(min_height_m=-1.0)


def test_hidden_bottoms_by_hand() -> None:
    labels = torch.tensor(
        [
            [-1, 0, 0, -1, 1, 1],
            [-1, 0, 0, -1, 1, 1],
            [-1, -1, -1, -1, -1, 2],
            [-1, -1, -1, 3, -1, 2],
        ]
    )
    depth = torch.tensor(
        [
            [40.0, 10.0, 10.0, 40.0, 20.0, 20.0],
            [40.0, 10.0, 10.0, 40.0, 20.0, 20.0],
            [9.5, 9.5, 8.0, 30.0, 17.0, 5.0],
            [9.0, 9.0, 8.0, 6.0, 0.0, 5.0],
        ]
    )
    # 0: one of two bottom cells over a nearer cell (8 < 9): half hidden counts; 1: over 17 m (hidden, 15 % nearer)
    # and over thing 2 (5 m); 2: on the last row (cut by the frame); 3: last row; label 4 has no cell
    assert hidden_bottoms(labels, 5, depth).tolist() == [True, True, True, True, False]
    depth[2, 2] = 9.5  # 9.5 is only 5 % nearer than 10: now neither bottom cell of 0 is hidden
    assert hidden_bottoms(labels, 5, depth).tolist() == [False, True, True, True, False]


# 0 road (stuff), 1 car (thing)
TABLE = ClassTable((ClassInfo(7, "road", False, (128, 64, 128)), ClassInfo(26, "car", True, (0, 0, 142))))


@pytest.mark.parametrize("strategy", ["fcn", "degeus"])
def test_the_merges_give_a_floating_thing_to_stuff(strategy: str) -> None:
    """Two cars on a 16 x 24 image: one reaches the ground, one floats 1 m above it; road everywhere else."""
    h, w = 16, 24
    row_heights = np.linspace(3.0, 0.0, h)  # image rows 0..15 from 3 m down to the ground
    masks = np.zeros((3, h, w), np.float32)
    masks[0, 8:16, 2:10] = 0.9  # 1.4 .. 0 m: standing
    masks[1, 2:9, 14:22] = 0.9  # 2.6 .. 1.2 m: floating
    masks[2] = 0.6
    classes, scores = torch.tensor([1, 1, 0]), torch.tensor([0.9, 0.8, 0.7])
    rows, cols = grid_samples(h, 4), grid_samples(w, 4)
    heights = np.repeat(row_heights[rows, None], len(cols), axis=1).astype(np.float32)
    depth = np.full(heights.shape, 12.0, np.float32)
    config = MergeConfig(strategy=strategy, degeus_alpha=0.5)
    plain = merge_panoptic(strategy, torch.from_numpy(masks), classes, scores, TABLE, config)
    check = ThingGeometryCheck(depth, heights, ThingGeometryConfig(min_height_m=0.0))
    checked = merge_panoptic(strategy, torch.from_numpy(masks), classes, scores, TABLE, config, check)
    assert set(plain.segment_ids.tolist()) == {7000, 26001, 26002}
    assert set(checked.segment_ids.tolist()) == {7000, 26001}
    np.testing.assert_array_equal(checked.ids[masks[0] > 0.5], 26001)
    np.testing.assert_array_equal(checked.ids[masks[1] > 0.5], 7000)
    np.testing.assert_array_equal(checked.ids[plain.ids != 26002], plain.ids[plain.ids != 26002])
    wrong = ThingGeometryCheck(depth[:-1], heights[:-1], ThingGeometryConfig())
    with pytest.raises(ValueError, match="grids are not the 4x6 grid"):
        merge_panoptic(strategy, torch.from_numpy(masks), classes, scores, TABLE, config, wrong)


def test_the_check_on_a_real_frame_only_gives_things_to_stuff(kitti_object: Path) -> None:
    """The shipped model on a real KITTI frame: the ground is the road under KITTI's camera (1.65 m), and with
    the fcn merge the check changes nothing but the pixels of the things it drops, which go to stuff."""
    from dataclasses import replace

    from depth_panoptic_ros.data.kitti_objects import read_object_frame
    from depth_panoptic_ros.pipeline import load_pipeline

    frame, _ = read_object_frame(kitti_object, "000004")
    pipeline = load_pipeline(None, None, merge="fcn")
    checked = pipeline.run(frame, outputs={"panoptic"})
    assert checked.ground is not None and checked.ground.offset == pytest.approx(1.65, abs=0.15)
    assert -checked.ground.normal[1] > 0.99
    depth_only = pipeline.run(frame, outputs={"depth"})  # no labels shown: no ground fitted for a check
    assert depth_only.ground is None and depth_only.check is None and "ground" not in depth_only.timings_ms
    assert np.array_equal(depth_only.depth, checked.depth)
    pipeline.config = replace(pipeline.config, things=ThingGeometryConfig(enabled=False))
    plain = pipeline.run(frame, outputs={"panoptic"})
    assert plain.ground is None
    table = pipeline.class_table
    before, after = plain.panoptic.ids, checked.panoptic.ids
    # instances are numbered again after a drop: compare the partition, not the ids
    kept = table.is_thing[table.class_index(after)]
    pairs = np.unique(np.stack((after[kept], before[kept])), axis=1)
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]  # one to one
    assert (table.class_index(pairs[0]) == table.class_index(pairs[1])).all()
    things_before = np.unique(before[table.is_thing[table.class_index(before)]])
    dropped = np.setdiff1d(things_before, pairs[1])
    assert len(dropped) > 0
    assert np.array_equal(np.isin(before, dropped), ~kept & (before != after))  # exactly their pixels changed
    assert np.isin(pairs[1], before[~np.isin(before, dropped)]).all()


@pytest.mark.gpu
@pytest.mark.parametrize("strategy", ["fcn", "degeus"])
def test_the_check_on_cuda_matches_cpu(strategy: str) -> None:
    """The device path (torch indexing of the owner map) against the CPU path (numpy's take)."""
    from test_merge import _random_scene

    masks, classes, scores = (torch.tensor(a) for a in _random_scene(3, CITYSCAPES, 256, 512))
    masks, scores = masks.float(), scores.float()
    rows, cols = grid_samples(256, 4), grid_samples(512, 4)
    heights = (np.linspace(4.0, -0.5, len(rows))[:, None] + np.sin(cols / 9.0)[None, :]).astype(np.float32)
    depth = np.full(heights.shape, 15.0, np.float32)
    check = ThingGeometryCheck(depth, heights, ThingGeometryConfig())
    config = MergeConfig(strategy=strategy)
    plain = merge_panoptic(strategy, masks, classes, scores, CITYSCAPES, config)
    on_cpu = merge_panoptic(strategy, masks, classes, scores, CITYSCAPES, config, check)
    on_gpu = merge_panoptic(strategy, masks.cuda(), classes.cuda(), scores.cuda(), CITYSCAPES, config, check)
    assert len(on_cpu.segment_ids) < len(plain.segment_ids)  # the check dropped something
    np.testing.assert_array_equal(on_cpu.ids, on_gpu.ids)
    np.testing.assert_array_equal(on_cpu.segment_ids, on_gpu.segment_ids)


def test_the_node_s_things_parameters_replace_the_pipeline_config_s(tmp_path: Path) -> None:
    pytest.importorskip("rclpy")
    from depth_panoptic_ros.ros.runtime.node import load_node_pipeline
    from depth_panoptic_ros.ros.runtime.parameters import NodeParameters

    config = tmp_path / "pipeline.yaml"
    config.write_text("things: {enabled: false, max_ground_gap_m: 0.5}\n")
    logger = type("Logger", (), {"error": lambda self, text: pytest.fail(text)})()
    params = NodeParameters(model_path="", pipeline_config=str(config))
    assert load_node_pipeline(params, logger)[0].config.things == ThingGeometryConfig()
    custom = ThingGeometryConfig(enabled=False, max_ground_gap_m=0.3, min_height_m=0.6)
    params = NodeParameters(model_path="", pipeline_config=str(config), things=custom)
    assert load_node_pipeline(params, logger)[0].config.things == custom
