"""Bag tools: synthetic bags, offline `bag process`, TF from the bag, interrupts, `bag play` with /clock, demo."""

from __future__ import annotations

import array
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rosbags")
pytest.importorskip("depth_panoptic_ros.msg")

import rclpy  # noqa: E402
import yaml  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, QoSReliabilityPolicy  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from depth_panoptic_ros.classes import ClassTable  # noqa: E402
from depth_panoptic_ros.cli import main  # noqa: E402
from depth_panoptic_ros.data.synthetic import LidarConfig, SyntheticConfig, camera_preset, generate_frame  # noqa: E402
from depth_panoptic_ros.data.synthetic.lidar_sim import lidar_extrinsic  # noqa: E402
from depth_panoptic_ros.frame import SensorFrame  # noqa: E402
from depth_panoptic_ros.geometry.backproject import build_cloud  # noqa: E402
from depth_panoptic_ros.geometry.camera import CameraModel  # noqa: E402
from depth_panoptic_ros.geometry.lidar import project_points  # noqa: E402
from depth_panoptic_ros.geometry.pointcloud2 import pack_cloud  # noqa: E402
from depth_panoptic_ros.panoptic.result import PanopticResult  # noqa: E402
from depth_panoptic_ros.pipeline import Pipeline, PipelineConfig, Products  # noqa: E402
from depth_panoptic_ros.products.instance_depth import instance_depth  # noqa: E402
from depth_panoptic_ros.ros.bags.bag_io import (  # noqa: E402
    TF_STATIC,
    BagWriter,
    open_bag,
    read_messages,
    tf_message,
    topic_types,
)
from depth_panoptic_ros.ros.bags.bag_play import BagPlayer  # noqa: E402
from depth_panoptic_ros.ros.bags.bag_process import (  # noqa: E402
    MONO_TOPICS,
    BagInputTopics,
    TransformTree,
    process_bag,
    read_transform_tree,
    resolve_topics,
)
from depth_panoptic_ros.ros.bags.synthetic_bag import (  # noqa: E402
    CAMERA_FRAME,
    LIDAR_FRAME,
    LIDAR_JITTER_S,
    lidar_to_msg,
    write_synthetic_bag,
)
from depth_panoptic_ros.ros.codecs.camera_info import camera_info_from_model, camera_model_from_info  # noqa: E402
from depth_panoptic_ros.ros.codecs.cloud_codec import cloud_to_msg, cloud_to_xyz  # noqa: E402
from depth_panoptic_ros.ros.codecs.image_codec import decode_depth, decode_image, image_pixels, image_to_msg  # noqa: E402
from depth_panoptic_ros.ros.codecs.products_to_msgs import (  # noqa: E402
    DEPTH,
    DEPTH_CAMERA_INFO,
    FRAME_TOPICS,
    GRID_TOPICS,
    INSTANCES,
    PANOPTIC_IDS,
    POINTS,
    build_output_messages,
    pipeline_outputs,
)
from depth_panoptic_ros.ros.demo.demo import panoptic_cloud_from_msg, plain  # noqa: E402
from depth_panoptic_ros.ros.runtime.sync import stamp_ns  # noqa: E402
from depth_panoptic_ros.ros.runtime.transforms import (
    quaternion_to_rotation,  # noqa: E402
    rotation_to_quaternion,  # noqa: E402
)

pytestmark = pytest.mark.ros

SIZE = (320, 96)
FRAMES = 3
NO_MODEL = Pipeline()  # classical depth only: measured LiDAR pixels come back bit-exactly


@pytest.fixture(scope="module")
def synthetic_bag(tmp_path_factory: pytest.TempPathFactory):
    return write_synthetic_bag(tmp_path_factory.mktemp("synth") / "in", FRAMES, size=SIZE)


def _messages(bag: Path, topic: str) -> list[tuple[int, object]]:
    with open_bag(bag) as reader:
        return [(t, m) for _, t, m in read_messages(reader, [topic])]


def _expected_lidar_depth(cloud_msg, camera: CameraModel, T: np.ndarray) -> np.ndarray:
    cfg = PipelineConfig()
    points = cloud_to_xyz(cloud_msg)
    return project_points(points, T, camera, max_range=cfg.lidar_max_range, min_depth=cfg.lidar_min_depth).depth


def _random_rotation(seed: int) -> np.ndarray:
    q = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))[0]
    return q * np.sign(np.linalg.det(q))  # det(-Q) = -det(Q) for 3x3: a proper rotation


def _rigid(rotation: np.ndarray, translation) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = rotation, translation
    return T


# -- small pieces -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rotation",
    [
        np.eye(3),
        np.diag([1.0, -1.0, -1.0]),  # 180 deg about x: the trace is -1, a non-trace branch
        np.diag([-1.0, 1.0, -1.0]),
        np.diag([-1.0, -1.0, 1.0]),
        np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float),  # camera_link <- optical frame
        _random_rotation(3),
        _random_rotation(4),
    ],
)
def test_rotation_to_quaternion_round_trips(rotation: np.ndarray) -> None:
    q = rotation_to_quaternion(rotation)
    assert np.linalg.norm(q) == pytest.approx(1.0)
    np.testing.assert_allclose(quaternion_to_rotation(*q), rotation, atol=1e-12)


def test_transform_tree_chains_static_links_and_ignores_tf_overrides() -> None:
    base_T_link = _rigid(np.eye(3), (0.1, 0.0, 1.6))
    link_T_optical = _rigid([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], (0, 0, 0))
    base_T_lidar = _rigid(_random_rotation(0), (0.3, -0.2, 1.9))
    tree = TransformTree()
    tree.add(
        tf_message([("base_link", "camera_link", base_T_link), ("/camera_link", "optical", link_T_optical)], 0), True
    )
    tree.add(tf_message([("base_link", "lidar", base_T_lidar)], 0), True)
    tree.add(tf_message([("base_link", "lidar", np.eye(4)), ("odom", "base_link", np.eye(4))], 0), False)

    expected = np.linalg.inv(base_T_link @ link_T_optical) @ base_T_lidar  # optical <- lidar, 3 links
    np.testing.assert_allclose(tree.lookup("optical", "lidar"), expected, atol=1e-12)
    np.testing.assert_allclose(tree.lookup("lidar", "optical"), np.linalg.inv(expected), atol=1e-12)
    np.testing.assert_allclose(tree.lookup("camera_link", "optical"), link_T_optical, atol=1e-12)  # parent <- child
    np.testing.assert_allclose(tree.lookup("odom", "lidar"), base_T_lidar, atol=1e-12)  # /tf links still join
    assert tree.lookup("optical", "radar") is None


def test_resolve_topics_defaults_siblings_and_clear_errors() -> None:
    image, info, cloud = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo", "sensor_msgs/msg/PointCloud2"
    assert resolve_topics({"/image": image, "/camera_info": info, "/lidar": cloud}) == MONO_TOPICS
    stereo = {"/left/image": image, "/left/camera_info": info, "/right/image": image, "/right/camera_info": info}
    assert resolve_topics(stereo) == BagInputTopics("/left/image", "/left/camera_info", None, "/right/image",
                                                 "/right/camera_info")  # fmt: skip
    driver = {"/cam/image_raw/compressed": "sensor_msgs/msg/CompressedImage", "/cam/camera_info": info,
              "/other/camera_info": info, "/velodyne_points": cloud}  # fmt: skip
    assert resolve_topics(driver) == BagInputTopics("/cam/image_raw/compressed", "/cam/camera_info", "/velodyne_points")

    with pytest.raises(ValueError, match=r"several image topics \['/a', '/b'\].*--image-topic"):
        resolve_topics({"/a": image, "/b": image, "/camera_info": info, "/lidar": cloud})
    with pytest.raises(ValueError, match=r"/points \(--lidar-topic\) is not in the bag; the bag holds: .*/lidar \("):
        resolve_topics({"/image": image, "/camera_info": info, "/lidar": cloud}, {"lidar": "/points"})
    with pytest.raises(ValueError, match="/lidar .* is sensor_msgs/msg/PointCloud2, expected"):
        resolve_topics({"/image": image, "/camera_info": info, "/lidar": cloud}, {"image": "/lidar"})
    with pytest.raises(ValueError, match="no depth source"):
        resolve_topics({"/image": image, "/camera_info": info})


def test_output_messages_carry_the_input_header_and_the_products() -> None:
    camera, height, width = CameraModel.from_matrices(8, 6, [[10, 0, 4], [0, 10, 3], [0, 0, 1]]), 6, 8
    ids = np.full((height, width), 7000, np.int32)  # road
    ids[1:4, 2:5] = 26001  # a car
    depth = np.full((height, width), 12.5, np.float32)
    depth[1:4, 2:5] = 5.0
    depth[5, 7] = 0.0  # unknown
    table = ClassTable.cityscapes()
    panoptic = PanopticResult(ids, np.array([7000, 26001]), np.array([0.9, 0.8], np.float32))
    rgb = np.zeros((height, width, 3), np.uint8)
    products = Products(sparse_depth=depth, depth=depth, panoptic=panoptic,
                        instances=instance_depth(ids, depth, camera, table, panoptic),
                        cloud=build_cloud(depth, camera, rgb=rgb, panoptic_ids=ids))  # fmt: skip
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    frame = SensorFrame(rgb=rgb, camera=camera)

    msgs = build_output_messages(products, frame, header, table, FRAME_TOPICS)
    assert set(msgs) == set(FRAME_TOPICS) - set(GRID_TOPICS)  # no grid product here (see test_bev_grid)
    for topic, msg in msgs.items():
        stamped = msg.markers[0].header if topic.endswith("markers") else msg.header
        assert (stamped.frame_id, stamped.stamp.sec, stamped.stamp.nanosec) == ("cam", 12, 345), topic
    np.testing.assert_array_equal(image_pixels(msgs[PANOPTIC_IDS], 1, "i4"), ids)
    received = decode_depth(msgs[DEPTH])
    np.testing.assert_array_equal(received, depth)  # 0 went out as NaN and came back as 0
    assert np.isnan(image_pixels(msgs[DEPTH], 1, "f4")[5, 7])
    car = next(i for i in msgs[INSTANCES].instances if i.panoptic_id == 26001)
    assert (car.class_name, car.pixel_count, car.depth_median) == ("car", 9, 5.0)
    assert msgs[DEPTH_CAMERA_INFO].p.reshape(3, 4).tolist() == camera.P.tolist()
    assert msgs[POINTS].width == height * width - 1  # the unknown pixel is no point

    depth_only = Products(sparse_depth=depth, depth=depth)
    assert set(build_output_messages(depth_only, frame, header, None, FRAME_TOPICS)) == {DEPTH, DEPTH_CAMERA_INFO}
    assert pipeline_outputs({DEPTH, "panoptic/depth_color"}) == {"depth", "panoptic", "instances"}
    with pytest.raises(ValueError, match="unknown output topic"):
        pipeline_outputs({"panoptic/nope"})


def test_panoptic_cloud_and_instances_survive_the_message_round_trip() -> None:
    camera = CameraModel.from_matrices(4, 3, [[5, 0, 2], [0, 5, 1], [0, 0, 1]])
    rng = np.random.default_rng(1)
    depth = rng.uniform(1, 9, (3, 4)).astype(np.float32)
    rgb = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    ids = rng.choice(np.array([7000, 26001, 26002], np.int32), (3, 4))
    cloud = build_cloud(depth, camera, rgb=rgb, class_ids=ids // 1000, panoptic_ids=ids)
    back = panoptic_cloud_from_msg(cloud_to_msg(pack_cloud(cloud), Header()))
    for name in ("xyz", "rgb", "label", "instance"):
        np.testing.assert_array_equal(getattr(back, name), getattr(cloud, name))
    assert plain(Header(frame_id="f")) == {"stamp": {"sec": 0, "nanosec": 0}, "frame_id": "f"}
    assert plain([1.5, float("nan")]) == [1.5, None]


# -- synthetic bag --------------------------------------------------------------------------------------------------


def test_synthetic_bag_is_a_realistic_recording(synthetic_bag) -> None:
    with open_bag(synthetic_bag.path) as reader:
        types = topic_types(reader)
        tree = read_transform_tree(reader)
    assert types == {"/image": "sensor_msgs/msg/Image", "/camera_info": "sensor_msgs/msg/CameraInfo",
                     "/lidar": "sensor_msgs/msg/PointCloud2", TF_STATIC: "tf2_msgs/msg/TFMessage"}  # fmt: skip
    images = _messages(synthetic_bag.path, "/image")
    stamps = [stamp_ns(m.header.stamp) for _, m in images]
    assert stamps == list(synthetic_bag.image_stamps_ns) == [t for t, _ in images]  # recorded at their stamps
    assert np.diff(stamps).tolist() == [100_000_000] * (FRAMES - 1)  # 10 Hz
    lidar = [m for _, m in _messages(synthetic_bag.path, "/lidar")]
    offsets = np.array([stamp_ns(m.header.stamp) for m in lidar]) - stamps
    assert np.all(np.abs(offsets) <= LIDAR_JITTER_S * 1e9) and np.any(offsets != 0)
    assert {m.header.frame_id for m in lidar} == {LIDAR_FRAME}

    expected = generate_frame(SyntheticConfig(size=SIZE, stereo=False), 1)
    np.testing.assert_array_equal(decode_image(images[1][1]), expected.rgb)
    np.testing.assert_array_equal(cloud_to_xyz(lidar[1]), expected.points[:, :3])
    info = _messages(synthetic_bag.path, "/camera_info")[0][1]
    np.testing.assert_allclose(camera_model_from_info(info).P, camera_preset("kitti", SIZE).camera.P)
    np.testing.assert_allclose(tree.lookup(CAMERA_FRAME, LIDAR_FRAME), lidar_extrinsic(LidarConfig()), atol=1e-12)


def test_synth_bag_cli_writes_a_stereo_bag(tmp_path: Path) -> None:
    assert main(["synth-bag", str(tmp_path / "b"), "--frames", "1", "--size", "32x64", "--stereo"]) == 0
    types = {t: m.split("/")[-1] for t, m in topic_types_of(tmp_path / "b").items()}
    assert types == {"/left/image": "Image", "/left/camera_info": "CameraInfo", "/right/image": "Image",
                     "/right/camera_info": "CameraInfo", "/lidar": "PointCloud2", TF_STATIC: "TFMessage"}  # fmt: skip
    right = camera_model_from_info(_messages(tmp_path / "b", "/right/camera_info")[0][1])
    assert right.baseline == pytest.approx(camera_preset("kitti").baseline_m)


def topic_types_of(bag: Path) -> dict[str, str]:
    with open_bag(bag) as reader:
        return topic_types(reader)


# -- bag process ---------------------------------------------------------------------------------------------------


def test_bag_process_writes_the_node_outputs_at_input_stamps(synthetic_bag, tmp_path: Path) -> None:
    summary = process_bag(synthetic_bag.path, tmp_path / "out", NO_MODEL, progress=False)
    assert (summary.images, summary.frames, summary.skipped) == (FRAMES, FRAMES, 0)
    out_types = topic_types_of(tmp_path / "out")
    assert out_types == {"/panoptic/depth": "sensor_msgs/msg/Image", "/panoptic/points": "sensor_msgs/msg/PointCloud2",
                         "/panoptic/depth/camera_info": "sensor_msgs/msg/CameraInfo"}  # fmt: skip

    with open_bag(synthetic_bag.path) as reader:
        T = read_transform_tree(reader).lookup(CAMERA_FRAME, LIDAR_FRAME)
    images = _messages(synthetic_bag.path, "/image")
    lidar = [m for _, m in _messages(synthetic_bag.path, "/lidar")]
    info = _messages(synthetic_bag.path, "/camera_info")[0][1]
    camera = camera_model_from_info(info)
    depths = _messages(tmp_path / "out", "/panoptic/depth")
    assert [t for t, _ in depths] == [t for t, _ in images]  # recorded at the input's record time
    for (_, image), (_, depth_msg), cloud in zip(images, depths, lidar, strict=True):
        assert depth_msg.header == image.header and depth_msg.encoding == "32FC1"
        measured = _expected_lidar_depth(cloud, camera, T)
        assert np.count_nonzero(measured) > 1000
        depth = decode_depth(depth_msg)
        np.testing.assert_array_equal(depth[measured > 0], measured[measured > 0])
    for _, out_info in _messages(tmp_path / "out", "/panoptic/depth/camera_info"):
        assert (out_info.width, out_info.height) == SIZE and out_info.p.tolist() == info.p.tolist()


def _copy_without_tf(source: Path, target: Path, tf: list | None = None) -> None:
    """The sensor topics of ``source`` into a new bag, with ``tf`` as its /tf_static instead of the original."""
    with open_bag(source) as reader, BagWriter(target) as writer:
        if tf is not None:
            writer.write(TF_STATIC, tf_message(tf, 0), reader.start_time, latched=True)
        for topic, time_ns, msg in read_messages(reader, ["/image", "/camera_info", "/lidar"]):
            writer.write(topic, msg, time_ns)


def _calibration_yaml(path: Path, camera: CameraModel, T: np.ndarray) -> Path:
    path.write_text(yaml.safe_dump({"width": camera.width, "height": camera.height,
                                    "K": camera.K.ravel().tolist(), "T_cam_lidar": T.ravel().tolist()}))  # fmt: skip
    return path


def test_tf_static_extrinsic_wins_and_the_calibration_is_the_fallback(synthetic_bag, tmp_path: Path) -> None:
    info = _messages(synthetic_bag.path, "/camera_info")[0][1]
    camera = camera_model_from_info(info)
    cloud, image = _messages(synthetic_bag.path, "/lidar")[0][1], _messages(synthetic_bag.path, "/image")[0][1]
    T_tf = lidar_extrinsic(LidarConfig())
    T_config = T_tf.copy()
    T_config[:3, 3] += (0.5, 0.0, 0.0)  # half a meter off: another projection
    calib = _calibration_yaml(tmp_path / "calib.yaml", camera, T_config)
    _copy_without_tf(synthetic_bag.path, tmp_path / "direct", [(image.header.frame_id, LIDAR_FRAME, T_tf)])
    _copy_without_tf(synthetic_bag.path, tmp_path / "no_tf")

    def first_depth(bag: Path, **options) -> np.ndarray:
        process_bag(bag, bag.with_name(bag.name + "_out"), NO_MODEL, progress=False, **options)
        return decode_depth(_messages(bag.with_name(bag.name + "_out"), "/panoptic/depth")[0][1])

    from_tf, from_config = _expected_lidar_depth(cloud, camera, T_tf), _expected_lidar_depth(cloud, camera, T_config)
    assert np.count_nonzero((from_tf != from_config) & (from_tf > 0)) > 100

    for bag in (synthetic_bag.path, tmp_path / "direct"):  # 3-link chain, then a direct parent/child link
        depth = first_depth(bag, calibration=calib)
        np.testing.assert_allclose(depth[from_tf > 0], from_tf[from_tf > 0], rtol=1e-6)
    depth = first_depth(tmp_path / "no_tf", calibration=calib)
    np.testing.assert_allclose(depth[from_config > 0], from_config[from_config > 0], rtol=1e-6)
    with pytest.raises(LookupError, match=r"no LiDAR -> camera extrinsic.*'lidar' to 'camera_optical_frame'"):
        process_bag(tmp_path / "no_tf", tmp_path / "fails", NO_MODEL, progress=False)


def test_missing_topic_is_one_clear_cli_error(synthetic_bag, tmp_path: Path, capsys) -> None:
    code = main(["bag", "process", str(synthetic_bag.path), str(tmp_path / "out"), "--model", "",
                 "--lidar-topic", "/velodyne_points"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "/velodyne_points (--lidar-topic) is not in the bag" in err
    assert "/lidar (sensor_msgs/msg/PointCloud2)" in err and "/image (sensor_msgs/msg/Image)" in err


def test_frames_that_cannot_be_processed_are_skipped_and_reported(synthetic_bag, tmp_path: Path, capsys) -> None:
    with open_bag(synthetic_bag.path) as reader, BagWriter(tmp_path / "bad") as writer:
        for topic, time_ns, msg in read_messages(reader, ["/image", "/camera_info", "/lidar", TF_STATIC]):
            if topic == "/camera_info":
                msg.width = 2 * msg.width  # a driver whose CameraInfo does not match its images
            writer.write(topic, msg, time_ns, latched=topic == TF_STATIC)
    summary = process_bag(tmp_path / "bad", tmp_path / "out", NO_MODEL, progress=False)
    assert (summary.frames, summary.skipped) == (0, FRAMES)
    assert f"image is {SIZE[0]}x{SIZE[1]} but its camera model is {2 * SIZE[0]}x{SIZE[1]}" in summary.first_error

    assert main(["bag", "process", str(tmp_path / "bad"), str(tmp_path / "out2"), "--model", ""]) == 2
    assert f"no frame processed out of {FRAMES} image(s): image is" in capsys.readouterr().err


def test_clouds_without_a_finite_point_are_skipped_as_the_node_skips_them(synthetic_bag, tmp_path: Path) -> None:
    with open_bag(synthetic_bag.path) as reader, BagWriter(tmp_path / "nan") as writer:
        for topic, time_ns, msg in read_messages(reader, ["/image", "/camera_info", "/lidar", TF_STATIC]):
            if topic == "/lidar":
                msg.data = array.array("B", b"\xff" * len(msg.data))  # every float32 field a NaN
            writer.write(topic, msg, time_ns, latched=topic == TF_STATIC)
    summary = process_bag(tmp_path / "nan", tmp_path / "out", NO_MODEL, progress=False)
    assert (summary.frames, summary.skipped) == (0, FRAMES)
    assert summary.first_error.startswith("/lidar: none of its ") and summary.first_error.endswith(" points is finite")


def test_interrupted_run_leaves_a_readable_bag_of_the_frames_done(synthetic_bag, tmp_path: Path) -> None:
    def interrupt_after_two(index: int, frame, products) -> None:
        if index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        process_bag(synthetic_bag.path, tmp_path / "out", NO_MODEL, progress=False, on_frame=interrupt_after_two)
    depths = _messages(tmp_path / "out", "/panoptic/depth")
    assert [stamp_ns(m.header.stamp) for _, m in depths] == list(synthetic_bag.image_stamps_ns[:2])


def test_interrupted_cli_run_says_what_it_kept(synthetic_bag, tmp_path: Path, capsys, monkeypatch) -> None:
    import depth_panoptic_ros.products.files as files

    exports = []

    def export_then_interrupt(out: Path, *args) -> None:
        exports.append(out)
        if len(exports) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second frame is exported

    monkeypatch.setattr(files, "write_products", export_then_interrupt)
    code = main(["bag", "process", str(synthetic_bag.path), str(tmp_path / "out"), "--model", "",
                 "--export", str(tmp_path / "export")])  # fmt: skip
    assert code == 130
    assert f"interrupted: {tmp_path / 'out'} holds the outputs of 2 frame(s)" in capsys.readouterr().out
    assert len(_messages(tmp_path / "out", "/panoptic/depth")) == 2  # written before its export began


def test_bag_process_cli_exports_files_per_frame(synthetic_bag, tmp_path: Path, capsys) -> None:
    code = main(["bag", "process", str(synthetic_bag.path), str(tmp_path / "out"), "--model", "",
                 "--export", str(tmp_path / "export")])  # fmt: skip
    assert code == 0
    assert f"processed {FRAMES} of {FRAMES} image(s)" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == [f"{i:06d}" for i in range(FRAMES)]
    exported = np.load(tmp_path / "export" / "000002" / "depth.npy")
    recorded = decode_depth(_messages(tmp_path / "out", "/panoptic/depth")[2][1])
    np.testing.assert_array_equal(exported, recorded)


@pytest.mark.slow
def test_bag_process_with_a_model_writes_every_output(synthetic_bag, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from depth_panoptic_ros.model import DepthPanopticModel, ModelConfig, save_model
    from depth_panoptic_ros.panoptic.config import PanopticNetConfig
    from depth_panoptic_ros.pipeline import load_pipeline

    torch.manual_seed(0)
    config = ModelConfig(panoptic=PanopticNetConfig(backbone="r18", fusion="none", fpn_channels=32,
                                                    head_channels=64, embed_dim=16), completion=None)  # fmt: skip
    save_model(tmp_path / "tiny.safetensors", DepthPanopticModel(config, ClassTable.cityscapes()))
    pipeline = load_pipeline(None, str(tmp_path / "tiny.safetensors"))
    from depth_panoptic_ros.products.files import write_products

    def export(index, frame, products) -> None:
        write_products(tmp_path / "export" / f"{index:06d}", frame, products, pipeline.class_table)

    summary = process_bag(synthetic_bag.path, tmp_path / "out", pipeline, progress=False, on_frame=export)

    assert summary.frames == FRAMES
    assert set(topic_types_of(tmp_path / "out")) == {f"/{t}" for t in FRAME_TOPICS} | {"/panoptic/classes"}
    assert summary.written["/panoptic/classes"] == 1
    classes = _messages(tmp_path / "out", "/panoptic/classes")[0][1]
    assert [c.name for c in classes.classes] == ClassTable.cityscapes().names
    image_headers = [m.header for _, m in _messages(synthetic_bag.path, "/image")]
    for (_, ids_msg), (_, instances), header in zip(_messages(tmp_path / "out", "/panoptic/ids"),
                                                    _messages(tmp_path / "out", "/panoptic/instances"),
                                                    image_headers, strict=True):  # fmt: skip
        assert ids_msg.header == header and instances.header == header
        ids = image_pixels(ids_msg, 1, "i4")
        assert ids.shape == (SIZE[1], SIZE[0])
        segments = sorted(set(np.unique(ids).tolist()) - {0})
        assert sorted(i.panoptic_id for i in instances.instances) == segments
        assert set(np.unique(ids // 1000).tolist()) - {0} <= set(ClassTable.cityscapes().ids.tolist())
    # the bird's-eye grid: in base_link (linked to the camera by the bag's /tf_static), at the image stamps
    rows, cols = pipeline.config.grid.shape
    grids, bevs = _messages(tmp_path / "out", "/panoptic/occupancy"), _messages(tmp_path / "out", "/panoptic/bev")
    for (_, grid), (_, bev), header in zip(grids, bevs, image_headers, strict=True):
        assert grid.header.frame_id == bev.header.frame_id == "base_link" and grid.header.stamp == header.stamp
        assert (grid.info.width, grid.info.height, len(grid.data)) == (cols, rows, rows * cols)
        assert set(np.asarray(grid.data).tolist()) <= {-1, 0, 100} and 100 in grid.data  # the tiny model labels
    from depth_panoptic_ros.data.images import read_rgb

    for name in ("bev.png", "occupancy.png"):
        assert read_rgb(tmp_path / "export" / "000000" / name).shape == (cols, rows, 3)  # forward up


def test_kitti_frame_bag_uses_its_velodyne_to_camera_link(kitti_object: Path, tmp_path: Path) -> None:
    from depth_panoptic_ros.data.images import read_rgb
    from depth_panoptic_ros.data.kitti import read_kitti_calib, read_points

    rgb = read_rgb(kitti_object / "image_2" / "000000.png")
    camera, T = read_kitti_calib(kitti_object / "calib" / "000000.txt", image_size=(rgb.shape[1], rgb.shape[0]))
    points = read_points(kitti_object / "velodyne" / "000000.bin")
    stamp = 1_317_000_000_000_000_000  # a 2011 drive
    header, lidar_header = Header(frame_id="camera_color_left"), Header(frame_id="velo_link")
    header.stamp.sec = lidar_header.stamp.sec = stamp // 1_000_000_000
    lidar_header.stamp.nanosec = 3_000_000  # 3 ms after the camera
    with BagWriter(tmp_path / "kitti") as bag:
        bag.write(TF_STATIC, tf_message([("camera_color_left", "velo_link", T)], stamp), stamp, latched=True)
        bag.write("/kitti/camera_color_left/image_raw", image_to_msg(rgb, "rgb8", header), stamp)
        bag.write("/kitti/camera_color_left/camera_info", camera_info_from_model(camera, header), stamp)
        bag.write("/kitti/velo/pointcloud", lidar_to_msg(points, lidar_header), stamp + 3_000_000)

    summary = process_bag(tmp_path / "kitti", tmp_path / "out", NO_MODEL, progress=False)
    assert summary.frames == 1
    depth_msg = _messages(tmp_path / "out", "/panoptic/depth")[0][1]
    assert depth_msg.header == header
    with open_bag(tmp_path / "kitti") as reader:
        T_tf = read_transform_tree(reader).lookup("camera_color_left", "velo_link")
    np.testing.assert_allclose(T_tf, T, atol=1e-3)  # KITTI's rotations are orthonormal to ~1e-4 only
    measured = _expected_lidar_depth(lidar_to_msg(points, lidar_header), camera, T_tf)
    assert 15_000 < np.count_nonzero(measured) < 25_000  # ~18k-20k of a sweep fall inside the image
    depth = decode_depth(depth_msg)
    np.testing.assert_array_equal(depth[measured > 0], measured[measured > 0])
    assert 3.0 < np.median(depth[depth > 0]) < 60.0


# -- bag play -------------------------------------------------------------------------------------------------------


def test_bag_play_delivers_messages_and_clock_in_bag_time(synthetic_bag) -> None:
    context = rclpy.Context()
    rclpy.init(context=context)
    received: list[Image] = []
    clocks: list[int] = []
    try:
        listener = rclpy.create_node("bag_play_listener", context=context)
        best_effort = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.BEST_EFFORT)  # as the node subscribes
        listener.create_subscription(Image, "/image", received.append, best_effort)
        listener.create_subscription(Clock, "/clock", lambda m: clocks.append(stamp_ns(m.clock)), QoSProfile(depth=100))
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(listener)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        player = BagPlayer(rclpy.create_node("bag_player", context=context), synthetic_bag.path,
                           ["/image", "/camera_info"])  # fmt: skip
        assert player.wait_for_subscribers(10.0, ["/image"]) == []
        time.sleep(0.5)  # the /clock publisher is created by play(): give discovery a moment after it
        rate = 0.5
        started = time.monotonic()
        sent = player.play(rate=rate, clock=True)
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 5.0
        while len(received) < FRAMES and time.monotonic() < deadline:
            time.sleep(0.05)
        executor.shutdown(timeout_sec=1.0)
    finally:
        rclpy.try_shutdown(context=context)

    stamps = list(synthetic_bag.image_stamps_ns)
    assert sent == 2 * FRAMES
    assert [stamp_ns(m.header.stamp) for m in received] == stamps
    assert elapsed >= (stamps[-1] - stamps[0]) / 1e9 / rate * 0.99  # paced by record time / rate, never faster
    assert clocks, "no /clock received"
    assert clocks == sorted(clocks) and stamps[0] <= clocks[0] and clocks[-1] == stamps[-1]
    assert len(set(clocks)) > FRAMES  # clock ticks between messages too, not only at them


_RELIABLE_LISTENER = """
import rclpy
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("stoppable_listener")
reliable = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
node.create_subscription(Image, "/image", lambda m: None, reliable)
rclpy.spin(node)
"""


@pytest.mark.slow
def test_bag_play_waits_for_acknowledgements_and_names_topics_left_unacknowledged(synthetic_bag) -> None:
    """A reliable subscriber that acknowledges lets play end at once; a stopped one (it cannot acknowledge) is
    named after the timeout, instead of the player leaving with the last messages unrepaired."""
    import signal
    import subprocess
    import sys

    from depth_panoptic_ros.ros.bags.bag_play import play_bag

    listener = subprocess.Popen([sys.executable, "-c", _RELIABLE_LISTENER])
    try:
        reports: list[str] = []
        started = time.monotonic()
        play_bag(synthetic_bag.path, ["/image"], rate=10.0, wait_for_subscribers_s=30.0, ack_timeout_s=20.0,
                 report=reports.append)  # fmt: skip
        assert reports == [] and time.monotonic() - started < 20.0
        context = rclpy.Context()  # one player for both plays: a stopped process cannot be discovered anew
        rclpy.init(context=context)
        try:
            player = BagPlayer(rclpy.create_node("acked_player", context=context), synthetic_bag.path, ["/image"])
            assert player.wait_for_subscribers(30.0) == []
            player.play(rate=10.0)
            assert player.wait_for_acks(20.0) == []
            listener.send_signal(signal.SIGSTOP)
            player.play(rate=10.0)
            started = time.monotonic()
            assert player.wait_for_acks(1.5) == ["/image"]
            assert time.monotonic() - started >= 1.5
        finally:
            rclpy.try_shutdown(context=context)
    finally:
        listener.send_signal(signal.SIGCONT)
        listener.kill()
        listener.wait()


def test_bag_play_cli_rejects_unknown_topics(synthetic_bag, capsys) -> None:
    assert main(["bag", "play", str(synthetic_bag.path), "--topics", "/nope"]) == 2
    assert "['/nope'] not in bag" in capsys.readouterr().err


# -- demo -----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_runs_the_node_end_to_end(tmp_path: Path) -> None:
    from depth_panoptic_ros.data.ply import read_ply
    from depth_panoptic_ros.ros.demo.demo import run_demo

    summary = run_demo(tmp_path, frames=3, size=(160, 48))
    assert summary.frames_in == 3 and 1 <= summary.frames_out <= 3
    assert summary.median_latency_ms is not None and summary.median_latency_ms > 0
    input_stamps = {stamp_ns(m.header.stamp) for _, m in _messages(tmp_path / "input", "/image")}
    depths = _messages(tmp_path / "outputs", "/panoptic/depth")
    assert len(depths) == summary.frames_out
    assert {stamp_ns(m.header.stamp) for _, m in depths} <= input_stamps
    for name in ("input.png", "depth.png", "contact_sheet.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert read_ply(tmp_path / "points.ply").xyz.shape[0] > 100
