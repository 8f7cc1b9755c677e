"""Dataset readers on tiny trees written by the tests: Cityscapes (via the synthetic exporter), KITTI depth
completion, Virtual KITTI 2, and the synthetic generator itself."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.data.cityscapes import CityscapesData, panoptic_from_coco
from depth_panoptic_ros.data.images import write_rgb
from depth_panoptic_ros.data.kitti import write_depth_png
from depth_panoptic_ros.data.kitti_depth import KittiDepthData
from depth_panoptic_ros.data.sample import SyntheticData
from depth_panoptic_ros.data.synthetic import LidarConfig, SyntheticConfig, export_cityscapes, generate_frame
from depth_panoptic_ros.data.vkitti2 import VKitti2Data
from depth_panoptic_ros.geometry.lidar import project_points
from depth_panoptic_ros.pipeline import Pipeline

TABLE = ClassTable.cityscapes()
CAR, TRUCK, ROAD, SKY, PERSON = 26, 27, 7, 23, 24


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Both maps split the image into the same segments (ids may be renumbered)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def _measured_by_pipeline(sample) -> np.ndarray:
    return Pipeline().run(sample.sensor_frame(), outputs=("depth",)).sparse_depth


# -- Cityscapes ------------------------------------------------------------------------------------------------------


def test_coco_segments_become_cityscapes_ids_with_instances_counted_per_class() -> None:
    coco = np.array([[5, 5, 9, 0], [700, 700, 26, 26], [41, 41, 41, 3]], dtype=np.uint32)
    segments = [
        {"id": 5, "category_id": 7, "iscrowd": 0},  # road (stuff)
        {"id": 9, "category_id": 26, "iscrowd": 0},  # car, 2nd by segment id
        {"id": 3, "category_id": 26, "iscrowd": 0},  # car, 1st
        {"id": 26, "category_id": 26, "iscrowd": 1},  # car crowd
        {"id": 700, "category_id": 24, "iscrowd": 0},  # person, 1st
        {"id": 41, "category_id": 99, "iscrowd": 0},  # not in the class table: void
    ]
    class_of_category = {7: 7, 26: 26, 24: 24}
    out = panoptic_from_coco(coco, segments, class_of_category, TABLE)
    expected = [[7000, 7000, 26002, 0], [24001, 24001, 26000, 26000], [0, 0, 0, 26001]]
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.int32
    with pytest.raises(ValueError, match="missing from segments_info"):
        panoptic_from_coco(np.array([[5, 77]], dtype=np.uint32), segments, class_of_category, TABLE)


@pytest.fixture(scope="module")
def cityscapes_tree(tmp_path_factory):
    config = SyntheticConfig(size=(320, 96), seed=3, lidar=False, n_things=(3, 6))
    root = export_cityscapes(tmp_path_factory.mktemp("cityscapes"), config, 2, split="val")
    return root, config


def test_cityscapes_reader_gives_back_the_exported_frames(cityscapes_tree) -> None:
    root, config = cityscapes_tree
    samples = CityscapesData(root=str(root)).open("val")
    assert len(samples) == 2
    for index in range(2):
        frame, sample = generate_frame(config, index), samples[index]
        assert sample.name == f"synth_000003_{index:06d}"
        np.testing.assert_array_equal(sample.rgb, frame.rgb)
        assert sample.camera.fx == pytest.approx(frame.camera.fx) and sample.camera.cy == pytest.approx(frame.camera.cy)
        # disparity is quantized to 1/256 px: depth error <= z^2 / (fx B) / 512, plus float rounding
        valid = frame.depth > 0
        bound = frame.depth[valid] ** 2 / (frame.camera.fx * config.rig_baseline_m) / 512
        assert np.all(np.abs(sample.depth[valid] - frame.depth[valid]) <= bound * 1.01 + 1e-4)
        assert np.all(sample.depth[~valid] == 0) and sample.sparse is sample.depth
        assert np.array_equal(sample.panoptic // 1000, frame.panoptic // 1000)
        assert _same_partition(sample.panoptic, frame.panoptic)
        things = TABLE.is_thing[TABLE.class_index(sample.panoptic)] & (sample.panoptic > 0)
        assert np.all(sample.panoptic[things] % 1000 >= 1)


def test_cityscapes_sgbm_depth_comes_from_the_stereo_pair(cityscapes_tree) -> None:
    root, _ = cityscapes_tree
    sample = CityscapesData(root=str(root), depth_source="sgbm").open("val")[0]
    matched = (sample.sparse > 0) & (sample.depth > 0)
    assert matched.mean() > 0.3
    relative = np.abs(sample.sparse[matched] - sample.depth[matched]) / sample.depth[matched]
    assert np.median(relative) < 0.1


def test_cityscapes_reader_names_what_is_missing(cityscapes_tree, tmp_path) -> None:
    root, _ = cityscapes_tree
    with pytest.raises(ValueError, match="leftImg8bit/train is missing"):
        CityscapesData(root=str(root)).open("train")
    with pytest.raises(ValueError, match="root is empty"):
        CityscapesData()
    (tmp_path / "leftImg8bit" / "val").mkdir(parents=True)
    with pytest.raises(ValueError, match="disparity/val is missing"):
        CityscapesData(root=str(tmp_path)).open("val")


# -- KITTI depth completion ------------------------------------------------------------------------------------------

P_RECT_02 = np.array([[721.5377, 0, 609.5593, 44.85728], [0, 721.5377, 172.854, 0.2163791], [0, 0, 1, 0.002745884]])


def _kitti_drive_tree(tmp_path, shape=(24, 40)):
    """One drive with two annotated frames; returns (root, raw_root, depths by frame)."""
    root, raw = tmp_path / "kitti_depth", tmp_path / "kitti_raw"
    drive, date = "2011_09_26_drive_0001_sync", "2011_09_26"
    rng = np.random.default_rng(0)
    depths = {}
    for frame in ("0000000005", "0000000006"):
        gt = np.where(rng.random(shape) < 0.5, np.round(rng.uniform(2, 80, shape) * 256) / 256, 0)
        sparse = np.where(rng.random(shape) < 0.1, gt, 0)
        for kind, depth in (("groundtruth", gt), ("velodyne_raw", sparse)):
            folder = root / "train" / drive / "proj_depth" / kind / "image_02"
            folder.mkdir(parents=True, exist_ok=True)
            write_depth_png(folder / f"{frame}.png", depth)
        image_dir = raw / date / drive / "image_02" / "data"
        image_dir.mkdir(parents=True, exist_ok=True)
        write_rgb(image_dir / f"{frame}.png", rng.integers(0, 255, (*shape, 3), dtype=np.uint8))
        depths[frame] = (sparse.astype(np.float32), gt.astype(np.float32))
    values = " ".join(f"{v:.6e}" for v in P_RECT_02.ravel())
    (raw / date / "calib_cam_to_cam.txt").write_text(f"calib_time: 09-Jan-2012 13:57:47\nP_rect_02: {values}\n")
    return root, raw, depths


def test_kitti_depth_reader_pairs_velodyne_raw_groundtruth_image_and_calibration(tmp_path) -> None:
    root, raw, depths = _kitti_drive_tree(tmp_path)
    samples = KittiDepthData(root=str(root), raw_root=str(raw)).open("train")
    assert len(samples) == 2
    sample = samples[1]
    assert sample.name == "2011_09_26_drive_0001_sync_image_02_0000000006" and sample.panoptic is None
    np.testing.assert_array_equal(sample.sparse, depths["0000000006"][0])
    np.testing.assert_array_equal(sample.depth, depths["0000000006"][1])
    np.testing.assert_allclose(sample.camera.P, P_RECT_02)


def test_sensor_frame_gives_the_pipeline_exactly_the_measured_depth(tmp_path) -> None:
    """Back-projection and the compensation of P's fourth column (KITTI P2) make the round trip exact."""
    root, raw, _ = _kitti_drive_tree(tmp_path)
    sample = KittiDepthData(root=str(root), raw_root=str(raw)).open("train")[0]
    measured = _measured_by_pipeline(sample)
    np.testing.assert_array_equal(measured > 0, sample.sparse > 0)
    np.testing.assert_allclose(measured, sample.sparse, rtol=1e-6)


def test_kitti_depth_selection_split_reads_its_intrinsics(tmp_path) -> None:
    base = tmp_path / "depth_selection" / "val_selection_cropped"
    stem = "2011_09_26_drive_0002_sync_{}_0000000005_image_02"
    depth = np.full((8, 12), 7.5)
    for folder, kind in (("velodyne_raw", "velodyne_raw"), ("groundtruth_depth", "groundtruth_depth")):
        (base / folder).mkdir(parents=True)
        write_depth_png(base / folder / f"{stem.format(kind)}.png", depth)
    (base / "image").mkdir()
    write_rgb(base / "image" / f"{stem.format('image')}.png", np.zeros((8, 12, 3), np.uint8))
    (base / "intrinsics").mkdir()
    (base / "intrinsics" / f"{stem.format('image')}.txt").write_text("700 0 6 0 700 4 0 0 1\n")
    sample = KittiDepthData(root=str(tmp_path)).open("val_selection_cropped")[0]
    assert sample.camera.fx == 700 and sample.camera.cx == 6
    assert np.all(sample.sparse == 7.5) and np.all(sample.depth == 7.5)


def test_kitti_depth_reader_names_what_is_missing(tmp_path) -> None:
    root, raw, _ = _kitti_drive_tree(tmp_path)
    with pytest.raises(ValueError, match="needs raw_root"):
        KittiDepthData(root=str(root)).open("train")
    with pytest.raises(ValueError, match="val is missing"):
        KittiDepthData(root=str(root), raw_root=str(raw)).open("val")
    (raw / "2011_09_26" / "calib_cam_to_cam.txt").unlink()
    with pytest.raises(ValueError, match="calib_cam_to_cam.txt"):
        KittiDepthData(root=str(root), raw_root=str(raw)).open("train")
    with pytest.raises(ValueError, match="val_selection_cropped"):
        KittiDepthData(root=str(root)).open("val_selection_cropped")


# -- Virtual KITTI 2 -------------------------------------------------------------------------------------------------


def _vkitti2_tree(tmp_path, shape=(20, 30)):
    from PIL import Image

    folder = tmp_path / "Scene20" / "clone"
    frames = folder / "frames"
    for sub in ("rgb", "depth", "classSegmentation", "instanceSegmentation"):
        (frames / sub / "Camera_0").mkdir(parents=True)
    classes = np.zeros((*shape, 3), np.uint8)
    classes[:5] = (90, 200, 255)  # sky
    classes[5:] = (100, 60, 100)  # road
    classes[10:15, 0:10] = (255, 127, 80)  # car, track 3
    classes[10:15, 10:20] = (0, 139, 139)  # van, track 4
    classes[15:, 20:] = (250, 100, 255)  # guard rail: void
    classes[5:8, 25:] = (160, 60, 60)  # truck without a track: crowd
    instance = np.zeros(shape, np.uint8)
    instance[10:15, 0:10], instance[10:15, 10:20] = 4, 5  # track id + 1
    depth_cm = np.full(shape, 1234, np.uint16)
    depth_cm[:5] = 65535  # sky
    cv2.imwrite(str(frames / "rgb" / "Camera_0" / "rgb_00007.jpg"), np.full((*shape, 3), 128, np.uint8))
    cv2.imwrite(str(frames / "depth" / "Camera_0" / "depth_00007.png"), depth_cm)
    write_rgb(frames / "classSegmentation" / "Camera_0" / "classgt_00007.png", classes)
    palette = Image.fromarray(instance, mode="P")
    palette.putpalette([0, 0, 0] + [200, 10, 10] * 255)
    palette.save(frames / "instanceSegmentation" / "Camera_0" / "instancegt_00007.png")
    (folder / "intrinsic.txt").write_text(
        "frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]\n7 0 725.0087 725.0087 620.5 187\n7 1 725.0087 725.0087 620.5 187\n"
    )
    return tmp_path


def test_vkitti2_reader_maps_classes_tracks_and_centimeters(tmp_path) -> None:
    root = _vkitti2_tree(tmp_path)
    config = VKitti2Data(root=str(root), train_scenes=("Scene20",), input_fraction=0.25, gt_fraction=0.5)
    sample = config.open("train")[0]
    assert sample.name == "Scene20_clone_Camera_0_00007" and sample.camera.fx == pytest.approx(725.0087)
    ids = sample.panoptic
    assert np.all(ids[:5] == SKY * 1000) and ids[9, 0] == ROAD * 1000
    assert np.all(ids[10:15, 0:10] == CAR * 1000 + 4) and np.all(ids[10:15, 10:20] == CAR * 1000 + 5)
    assert np.all(ids[15:, 20:] == 0) and np.all(ids[5:8, 25:] == TRUCK * 1000)
    # measured and ground-truth pixels are disjoint draws of the dense depth; sky (65535) is never valid
    measured, truth = sample.sparse > 0, sample.depth > 0
    assert not np.any(measured & truth) and not np.any(measured[:5] | truth[:5])
    assert np.all(sample.sparse[measured] == np.float32(12.34)) and np.all(sample.depth[truth] == np.float32(12.34))
    below_sky = measured[5:].size
    assert 0.15 < measured[5:].sum() / below_sky < 0.35 and 0.4 < truth[5:].sum() / below_sky < 0.6
    np.testing.assert_array_equal(config.open("train")[0].sparse, sample.sparse)  # the draw is reproducible


def test_vkitti2_reader_names_what_is_missing(tmp_path) -> None:
    root = _vkitti2_tree(tmp_path)
    with pytest.raises(ValueError, match="Scene01/clone/frames/rgb/Camera_0 is missing"):
        VKitti2Data(root=str(root)).open("train")
    (root / "Scene20" / "clone" / "frames" / "depth" / "Camera_0" / "depth_00007.png").unlink()
    with pytest.raises(ValueError, match="depth_00007.png is missing"):
        VKitti2Data(root=str(root)).open("val")[0]


# -- synthetic -------------------------------------------------------------------------------------------------------


def test_synthetic_samples_are_the_projected_lidar_and_the_rendered_depth() -> None:
    generator = SyntheticConfig(size=(160, 48), stereo=False, seed=4, lidar_config=LidarConfig(fov_deg=90))
    data = SyntheticData(generator=generator, train_frames=3, val_frames=2)
    train, val = data.open("train"), data.open("val")
    assert (len(train), len(val)) == (3, 2)
    sample, frame = val[1], generate_frame(generator, 4)  # validation follows the training frames
    expected = project_points(frame.points, frame.T_cam_lidar, frame.camera).depth
    np.testing.assert_array_equal(sample.sparse, expected)
    np.testing.assert_array_equal(sample.depth, frame.depth)
    np.testing.assert_array_equal(sample.panoptic, frame.panoptic)
    np.testing.assert_array_equal(sample.look_alike_pairs, frame.look_alike_pairs)
    assert np.count_nonzero(sample.sparse) > 100
    with pytest.raises(ValueError, match="lidar"):
        SyntheticData(generator=SyntheticConfig(lidar=False))
    with pytest.raises(ValueError, match="split"):
        data.open("test")


def test_cityscapes_json_categories_are_matched_by_name(cityscapes_tree) -> None:
    root, _ = cityscapes_tree
    coco = json.loads((root / "gtFine" / "cityscapes_panoptic_val.json").read_text())
    by_name = {c["name"]: c["id"] for c in coco["categories"]}
    samples = CityscapesData(root=str(root)).open("val")
    assert samples.class_of_category[by_name["car"]] == CAR and samples.class_of_category[by_name["person"]] == PERSON
