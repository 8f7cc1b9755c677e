from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.cli import main
from depth_panoptic_ros.data.kitti import read_kitti_calib, read_velodyne_bin
from depth_panoptic_ros.data.synthetic import (
    LidarConfig,
    SyntheticConfig,
    SyntheticDataset,
    camera_preset,
    export_cityscapes,
    generate_frame,
)
from depth_panoptic_ros.data.synthetic.lidar_sim import LidarRays
from depth_panoptic_ros.data.synthetic.rays import CameraRays
from depth_panoptic_ros.data.synthetic.render import cast

TABLE = ClassTable.cityscapes()
CAR, PERSON, ROAD, SKY = 26, 24, 7, 23
SMALL = (414, 125)  # a third of KITTI's size: the same field of view, nine times fewer rays


@pytest.fixture(scope="module")
def kitti_frame():
    """A full-size KITTI-like frame with both kinds of look-alike pairs, without sensor noise (so that the stereo
    check sees the rendering alone)."""
    config = SyntheticConfig(seed=5, look_alike_fraction=1.0, same_depth_fraction=1.0, image_noise=0.0)
    return generate_frame(config, 0)


def _yaw_matrix(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _backproject(depth: np.ndarray, camera, mask: np.ndarray) -> np.ndarray:
    v, u = np.nonzero(mask)
    z = depth[v, u].astype(np.float64)
    return np.stack([(u - camera.cx) / camera.fx * z, (v - camera.cy) / camera.fy * z, z], axis=1)


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    v, u = np.nonzero(mask)
    return u.min(), v.min(), u.max(), v.max()


# -- presets and configuration


def test_presets_follow_the_real_rigs() -> None:
    kitti = camera_preset("kitti")
    assert kitti.camera.shape == (375, 1242) and kitti.camera.fx == pytest.approx(721.5377)
    assert (kitti.height_m, kitti.baseline_m) == (1.65, 0.54)
    city = camera_preset("cityscapes").camera
    assert city.shape == (512, 1024)
    # half of Cityscapes' 2048x1024 intrinsics, pixel centers kept: c' = c / 2 - 0.25
    assert city.fx == pytest.approx(2262.52 / 2) and city.cx == pytest.approx(1096.98 / 2 - 0.25)
    small = camera_preset("kitti", (621, 375)).camera
    assert small.fx == pytest.approx(721.5377 / 2) and small.fy == pytest.approx(721.5377)
    with pytest.raises(ValueError, match="unknown camera preset 'nuscenes'"):
        camera_preset("nuscenes")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "waymo"}, "unknown synthetic preset"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"look_alike_fraction": 1.5}, r"look_alike_fraction must lie in \[0, 1\], got 1.5"),
        ({"n_things": (5, 2)}, "n_things"),
        ({"size": (8, 8)}, "size"),
        ({"baseline_m": 0.0}, "baseline_m"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**kwargs)


def test_lidar_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="lidar beams must be >= 1, got 0"):
        LidarConfig(beams=0)
    with pytest.raises(ValueError, match="elevation_deg"):
        LidarConfig(elevation_deg=(-20.0, 2.0))
    with pytest.raises(ValueError, match="dropout"):
        LidarConfig(dropout=-0.1)


# -- determinism and the dataset


def test_same_config_and_index_give_identical_frames() -> None:
    config = SyntheticConfig(size=SMALL, seed=11, lidar_config=LidarConfig(fov_deg=90.0))
    a, b = generate_frame(config, 2), generate_frame(config, 2)
    for name in ("rgb", "right_rgb", "depth", "panoptic", "points", "T_cam_lidar", "look_alike_pairs"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    other_seed = generate_frame(dataclasses.replace(config, seed=12), 2)
    other_index = generate_frame(config, 3)
    assert not np.array_equal(a.depth, other_seed.depth)
    assert not np.array_equal(a.depth, other_index.depth)


def test_dataset_is_lazy_and_indexable() -> None:
    config = SyntheticConfig(size=(160, 64), stereo=False, lidar=False)
    dataset = SyntheticDataset(config, 3)
    assert len(dataset) == 3 and len(list(dataset)) == 3
    assert np.array_equal(dataset[1].rgb, generate_frame(config, 1).rgb)
    assert np.array_equal(dataset[-1].panoptic, dataset[2].panoptic)
    assert dataset[0].right_rgb is None and dataset[0].points is None
    with pytest.raises(IndexError, match="out of range"):
        dataset[3]
    with pytest.raises(ValueError, match="length"):
        SyntheticDataset(config, -1)


# -- geometry and labels


def test_road_depth_is_the_ground_plane(kitti_frame) -> None:
    camera, depth = kitti_frame.camera, kitti_frame.depth
    v, u = np.nonzero(kitti_frame.panoptic == ROAD * 1000)
    assert v.size > 10_000
    expected = 1.65 * camera.fy / (v - camera.cy)  # flat road 1.65 m below the camera
    np.testing.assert_allclose(depth[v, u], expected, rtol=1e-5)


def test_panoptic_ids_are_cityscapes_ids(kitti_frame) -> None:
    ids = kitti_frame.panoptic
    assert ids.dtype == np.int32 and ids.shape == (375, 1242)
    index = TABLE.class_index(ids)
    assert np.all(index >= 0), "every pixel holds a Cityscapes class (no void)"
    instance = ids % 1000
    thing = TABLE.is_thing[index]
    assert np.all(instance[thing] >= 1) and np.all(instance[~thing] == 0)
    sky = ids == SKY * 1000
    assert sky.any() and np.all(kitti_frame.depth[sky] == 0) and np.all(kitti_frame.depth[~sky] > 0)
    present = set(np.unique(ids // 1000).tolist())
    assert {ROAD, 8, 11, SKY, CAR} <= present


def test_things_are_depth_consistent_connected_and_occluded_correctly(kitti_frame) -> None:
    """Every thing pixel lies in its instance's 3D box, and its mask is the instance rendered alone (connected)
    minus what something nearer covers."""
    frame, scene = kitti_frame, kitti_frame.scene
    rays = CameraRays(frame.camera, np.zeros(3))
    checked = 0
    for inst in scene.instances:
        visible = frame.panoptic == inst.segment
        points = _backproject(frame.depth, frame.camera, visible)
        local = (points - inst.center) @ _yaw_matrix(inst.yaw)
        assert np.all(np.abs(local) <= inst.half + 2e-3), inst.segment
        alone = cast(
            dataclasses.replace(scene, primitives=tuple(p for p in scene.primitives if p.segment == inst.segment)), rays
        )
        amodal = alone.segment == inst.segment
        assert not np.any(visible & ~amodal)
        hidden = amodal & ~visible
        assert np.all(frame.depth[hidden] < alone.t[hidden]), "a hidden pixel is covered by something nearer"
        if amodal.sum() >= 20:
            assert cv2.connectedComponents(amodal.astype(np.uint8), connectivity=8)[0] == 2, inst.segment
            checked += 1
    assert checked >= 4


def test_culling_to_footprints_changes_nothing(monkeypatch) -> None:
    """Each solid is tested only against the rays of its footprint: the result equals testing every ray."""
    config = SyntheticConfig(size=SMALL, seed=8, n_things=(12, 12), lidar=False, stereo=False)
    frame = generate_frame(config, 0)
    camera_rays, lidar_rays = CameraRays(frame.camera, np.zeros(3)), LidarRays(LidarConfig())
    culled = cast(frame.scene, lidar_rays)
    for grid in (CameraRays, LidarRays):
        monkeypatch.setattr(grid, "footprint", lambda self, corners: (slice(None), slice(None)))
    every_camera_ray, every_lidar_ray = cast(frame.scene, camera_rays), cast(frame.scene, lidar_rays)
    assert np.array_equal(every_camera_ray.segment, frame.panoptic)
    np.testing.assert_array_equal(np.where(np.isfinite(every_camera_ray.t), every_camera_ray.t, 0), frame.depth)
    assert np.array_equal(every_lidar_ray.segment, culled.segment)
    np.testing.assert_array_equal(every_lidar_ray.t, culled.t)


def test_a_narrow_lidar_sweep_is_the_middle_of_a_full_one() -> None:
    exact = {"dropout": 0.0, "range_noise_m": 0.0, "azimuth_step_deg": 0.2}
    config = SyntheticConfig(size=SMALL, seed=6, stereo=False, lidar_config=LidarConfig(**exact))
    narrow = generate_frame(dataclasses.replace(config, lidar_config=LidarConfig(fov_deg=60.0, **exact)), 0).points
    full = generate_frame(config, 0).points
    azimuth = np.degrees(np.arctan2(full[:, 1], full[:, 0]))
    middle = full[(azimuth <= 30.0 + 1e-3) & (azimuth > -29.9)]
    assert len(narrow) == len(middle) > 5000
    np.testing.assert_allclose(narrow, middle, atol=1e-3)


# -- look-alike pairs


def _pair_facts(frame, pair):
    scene = frame.scene
    instances = {inst.segment: inst for inst in scene.instances}
    masks = [frame.panoptic == s for s in pair]
    parts = [
        [
            (type(p), p.surface, tuple(np.round(p.corners() - instances[s].center, 6).ravel()))
            for p in scene.primitives
            if p.segment == s
        ]
        for s in pair
    ]
    return instances, masks, parts


def test_look_alike_pairs_overlap_at_clearly_different_depths() -> None:
    config = SyntheticConfig(
        size=SMALL,
        seed=3,
        look_alike_fraction=1.0,
        same_depth_fraction=0.0,
        lidar=False,
        stereo=False,
        look_alike_min_gap_m=8.0,
    )
    camera = camera_preset("kitti", SMALL).camera
    for index in range(4):
        frame = generate_frame(config, index)
        assert frame.look_alike_pairs.shape == (1, 2) and frame.same_depth_pairs.shape == (0, 2)
        near, far = frame.look_alike_pairs[0]
        assert near // 1000 == far // 1000 and near // 1000 in (CAR, PERSON)
        instances, masks, parts = _pair_facts(frame, (near, far))
        assert parts[0] == parts[1], "same shape and the same surfaces (color, texture)"
        assert instances[far].center[2] - instances[near].center[2] >= 8.0
        assert np.median(frame.depth[masks[1]]) - np.median(frame.depth[masks[0]]) > 7.0
        assert min(m.sum() for m in masks) >= 30
        # the projected 3D boxes overlap by 30-60 % of the farther one's width
        boxes = []
        for s in (near, far):
            inst = instances[s]
            signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T
            corners = inst.center + (signs * inst.half) @ _yaw_matrix(inst.yaw).T
            u = camera.fx * corners[:, 0] / corners[:, 2] + camera.cx
            boxes.append((u.min(), u.max()))
        overlap = (min(boxes[0][1], boxes[1][1]) - max(boxes[0][0], boxes[1][0])) / (boxes[1][1] - boxes[1][0])
        assert 0.25 <= overlap <= 0.65, overlap
        a, b = _mask_box(masks[0]), _mask_box(masks[1])
        assert a[0] <= b[2] + 1 and b[0] <= a[2] + 1 and a[1] <= b[3] + 1 and b[1] <= a[3] + 1, "touching in the image"


def test_same_depth_pairs_stand_side_by_side() -> None:
    config = SyntheticConfig(
        size=SMALL, seed=4, look_alike_fraction=0.0, same_depth_fraction=1.0, lidar=False, stereo=False
    )
    camera = camera_preset("kitti", SMALL).camera
    for index in range(4):
        frame = generate_frame(config, index)
        assert frame.same_depth_pairs.shape == (1, 2) and frame.look_alike_pairs.shape == (0, 2)
        first, second = frame.same_depth_pairs[0]
        instances, masks, parts = _pair_facts(frame, (first, second))
        assert first // 1000 == second // 1000 and parts[0] == parts[1]
        assert instances[first].center[2] == instances[second].center[2]
        assert abs(np.median(frame.depth[masks[0]]) - np.median(frame.depth[masks[1]])) < 0.5
        a, b = sorted([_mask_box(m) for m in masks])
        z = instances[first].center[2]
        assert b[0] - a[2] <= camera.fx * 0.6 / z + 2, "at most a 0.6 m gap between them"


# -- stereo


def test_right_view_is_the_left_shifted_by_the_disparity(kitti_frame) -> None:
    frame, camera = kitti_frame, kitti_frame.camera
    right = frame.right_camera
    assert right.P[0, 3] == pytest.approx(-camera.fx * 0.54) and right.baseline == pytest.approx(0.54)
    right_depth = cast(frame.scene, CameraRays(camera, np.array([0.54, 0.0, 0.0]))).t
    v, u = np.mgrid[20:360:7, 40:1200:7]
    z = frame.depth[v, u]
    valid = z > 3.0
    v, u, z = v[valid], u[valid], z[valid]
    x_right = u - camera.fx * 0.54 / z
    col = np.round(x_right).astype(int)
    inside = (x_right >= 1) & (x_right < camera.width - 2)
    v, u, z, x_right, col = v[inside], u[inside], z[inside], x_right[inside], col[inside]
    seen = np.abs(right_depth[v, col] - z) < 0.01 * z  # the same surface point is visible in the right view
    v, u, x_right = v[seen], u[seen], x_right[seen]
    assert v.size > 3000

    def sample_right(x: np.ndarray) -> np.ndarray:
        x0 = np.floor(x).astype(int)
        w = (x - x0)[:, None]
        return (1 - w) * frame.right_rgb[v, x0] + w * frame.right_rgb[v, x0 + 1]

    left = frame.rgb[v, u].astype(float)
    error = np.abs(left - sample_right(x_right)).mean()
    error_off_by_one = np.abs(left - sample_right(np.clip(x_right + 1, 0, camera.width - 2))).mean()
    assert error < 1.6, error  # interpolation and 8-bit rounding only
    assert error_off_by_one > 2.5 * error  # the surfaces are textured: a wrong disparity shows


# -- LiDAR


def test_lidar_points_project_onto_the_rendered_depth(kitti_frame) -> None:
    frame, camera = kitti_frame, kitti_frame.camera
    points, T = frame.points, frame.T_cam_lidar
    assert points.dtype == np.float32 and points.shape[1] == 4 and 80_000 < len(points) < 130_000
    np.testing.assert_allclose(T[:3, :3] @ [1, 0, 0], [0, 0, 1])  # LiDAR x (forward) = camera z
    np.testing.assert_allclose(T[:3, :3] @ [0, 0, 1], [0, -1, 0])  # LiDAR z (up) = camera -y
    assert np.all(np.linalg.norm(points[:, :3], axis=1) <= 120.1)
    assert np.all((points[:, 3] >= 0) & (points[:, 3] <= 1))

    cam = points[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    cam = cam[cam[:, 2] > 1.0]
    u = camera.fx * cam[:, 0] / cam[:, 2] + camera.cx
    v = camera.fy * cam[:, 1] / cam[:, 2] + camera.cy
    inside = (u >= 1) & (u < camera.width - 2) & (v >= 1) & (v < camera.height - 2)
    u, v, z = u[inside], v[inside], cam[inside, 2]
    assert 10_000 < u.size < 30_000
    col, row = np.round(u).astype(int), np.round(v).astype(int)
    sky = frame.panoptic == SKY * 1000
    sky_all_around = cv2.erode(sky.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert not np.any(sky_all_around[row, col]), "no LiDAR return from the sky"

    # Inverse depth is bilinear on planes: interpolate it where the four neighbors lie on one segment.
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    quad = [(v0, u0), (v0, u0 + 1), (v0 + 1, u0), (v0 + 1, u0 + 1)]
    same = np.all([frame.panoptic[q] == frame.panoptic[quad[0]] for q in quad], axis=0)
    same &= np.all([frame.depth[q] > 0 for q in quad], axis=0)
    fu, fv = (u - u0)[same], (v - v0)[same]
    inv = [1.0 / frame.depth[q][same] for q in quad]
    inv_depth = (inv[0] * (1 - fu) + inv[1] * fu) * (1 - fv) + (inv[2] * (1 - fu) + inv[3] * fu) * fv
    error = z[same] - 1.0 / inv_depth
    assert np.mean(np.abs(error) < 0.07) > 0.95  # 3.5 sigma of the range noise; the rest: parallax occlusions
    assert np.median(np.abs(error)) < 0.025


# -- export and CLI


def test_export_writes_cityscapes_and_kitti_files_that_read_back(tmp_path) -> None:
    config = SyntheticConfig(size=SMALL, seed=9, lidar_config=LidarConfig(fov_deg=120.0))
    export_cityscapes(tmp_path, config, 2, split="val")
    table = ClassTable.cityscapes()
    coco = json.loads((tmp_path / "gtFine" / "cityscapes_panoptic_val.json").read_text())
    assert len(coco["categories"]) == 19 and {c["id"] for c in coco["categories"]} == set(table.ids.tolist())
    looks = json.loads((tmp_path / "gtFine" / "synth_look_alike_val.json").read_text())
    for index in range(2):
        frame = generate_frame(config, index)
        name = f"synth_000009_{index:06d}"
        left = cv2.imread(str(tmp_path / "leftImg8bit/val/synth" / f"{name}_leftImg8bit.png"))[..., ::-1]
        right = cv2.imread(str(tmp_path / "rightImg8bit/val/synth" / f"{name}_rightImg8bit.png"))[..., ::-1]
        assert np.array_equal(left, frame.rgb) and np.array_equal(right, frame.right_rgb)

        instance_ids = cv2.imread(
            str(tmp_path / "gtFine/val/synth" / f"{name}_gtFine_instanceIds.png"), cv2.IMREAD_UNCHANGED
        )
        assert instance_ids.dtype == np.uint16
        stuff = frame.panoptic % 1000 == 0
        assert np.array_equal(instance_ids[stuff], frame.panoptic[stuff] // 1000)
        assert np.array_equal(instance_ids[~stuff], frame.panoptic[~stuff])
        labels = cv2.imread(str(tmp_path / "gtFine/val/synth" / f"{name}_gtFine_labelIds.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(labels, frame.panoptic // 1000)

        png = cv2.imread(str(tmp_path / "gtFine/cityscapes_panoptic_val" / f"{name}_gtFine_panoptic.png"))
        rgb = png[..., ::-1].astype(np.int64)
        coco_ids = rgb[..., 0] + 256 * rgb[..., 1] + 256**2 * rgb[..., 2]
        assert np.array_equal(coco_ids, instance_ids)
        annotation = next(a for a in coco["annotations"] if a["image_id"] == name)
        assert annotation["file_name"] == f"{name}_gtFine_panoptic.png"
        segments = {s["id"]: s for s in annotation["segments_info"]}
        assert set(segments) == set(np.unique(coco_ids).tolist())
        for segment_id, info in segments.items():
            mask = coco_ids == segment_id
            v, u = np.nonzero(mask)
            assert info["area"] == mask.sum()
            assert info["bbox"] == [u.min(), v.min(), u.max() - u.min() + 1, v.max() - v.min() + 1]
            assert info["category_id"] == (segment_id if segment_id < 1000 else segment_id // 1000)
            assert info["iscrowd"] == 0

        disparity = cv2.imread(str(tmp_path / "disparity/val/synth" / f"{name}_disparity.png"), cv2.IMREAD_UNCHANGED)
        camera = json.loads((tmp_path / "camera/val/synth" / f"{name}_camera.json").read_text())
        assert camera["extrinsic"]["baseline"] == 0.54 and camera["intrinsic"]["fx"] == pytest.approx(frame.camera.fx)
        valid = disparity > 0
        assert np.array_equal(valid, frame.depth > 0)
        np.testing.assert_allclose(
            (disparity[valid] - 1.0) / 256.0, frame.camera.fx * 0.54 / frame.depth[valid], atol=1 / 512 + 1e-6
        )

        kitti = tmp_path / "kitti" / "val"
        np.testing.assert_array_equal(read_velodyne_bin(kitti / "velodyne" / f"{index:06d}.bin"), frame.points)
        kitti_camera, T = read_kitti_calib(kitti / "calib" / f"{index:06d}.txt", image_size=SMALL)
        np.testing.assert_allclose(kitti_camera.P, frame.camera.P, rtol=1e-9)
        np.testing.assert_allclose(T, frame.T_cam_lidar, atol=1e-12)
        right_camera, _ = read_kitti_calib(kitti / "calib" / f"{index:06d}.txt", image_size=SMALL, camera=3)
        assert right_camera.baseline == pytest.approx(0.54)
        assert looks["images"][index]["look_alike_pairs"] == frame.look_alike_pairs.tolist()


def test_export_matches_cityscapesscripts_panoptic_conversion(tmp_path) -> None:
    """cityscapesScripts' own createPanopticImgs, run on the exported instanceIds, gives the same JSON and PNGs."""
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    export_cityscapes(tmp_path, SyntheticConfig(size=SMALL, seed=2, lidar=False, stereo=False), 2)
    reference = tmp_path / "reference"
    reference.mkdir()
    convert2panoptic(str(tmp_path / "gtFine"), str(reference), setNames=["train"])
    ours = json.loads((tmp_path / "gtFine" / "cityscapes_panoptic_train.json").read_text())
    theirs = json.loads((reference / "cityscapes_panoptic_train.json").read_text())
    assert ours == theirs
    for annotation in theirs["annotations"]:
        name = annotation["file_name"]
        a = cv2.imread(str(tmp_path / "gtFine" / "cityscapes_panoptic_train" / name))
        b = cv2.imread(str(reference / "cityscapes_panoptic_train" / name))
        assert np.array_equal(a, b)


def test_cli_writes_a_dataset_and_reports_bad_input(tmp_path, capsys) -> None:
    out = tmp_path / "synth"
    assert main(["synth", "--out", str(out), "--frames", "1", "--size", "64x160", "--no-stereo", "--no-lidar"]) == 0
    assert (out / "leftImg8bit/train/synth/synth_000000_000000_leftImg8bit.png").exists()
    assert not (out / "rightImg8bit").exists() and not (out / "kitti").exists()
    assert main(["synth", "--out", str(out), "--frames", "0"]) == 2
    assert "number of frames to export must be >= 1, got 0" in capsys.readouterr().err
