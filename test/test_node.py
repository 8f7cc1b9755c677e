"""depth_panoptic_node: end to end in its own process (mono with a tiny model, stereo, QoS trouble), and
unit-level checks of parameters, output selection, diagnostics and the latest-only hand-off.

The node is fed synthetic scenes built by hand in node_fixtures; values are checked against independent
computations (hand projection of the LiDAR points, back-projection, counts over the published id image).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")
pkg_msgs = pytest.importorskip("depth_panoptic_ros.msg")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from nav_msgs.msg import OccupancyGrid  # noqa: E402
from node_fixtures import (  # noqa: E402
    CAMERA_FRAME,
    FOCAL,
    HEIGHT,
    WIDTH,
    LifecycleClient,
    MonoSession,
    NodeProcess,
    Peer,
    camera_info_msg,
    cloud_fields,
    cloud_msg,
    header_of,
    image_array,
    image_msg,
    intrinsics,
    lidar_points,
    projected_depth,
    stamp_msg,
    stamp_of,
    textured_rgb,
)
from rclpy.exceptions import ParameterException  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from depth_panoptic_ros.bench.geometry import GROUND_T_CAM, T_CAM_LIDAR, lidar_sweep  # noqa: E402
from depth_panoptic_ros.classes import ClassTable  # noqa: E402
from depth_panoptic_ros.depth.classical import complete_depth  # noqa: E402
from depth_panoptic_ros.frame import SensorFrame  # noqa: E402
from depth_panoptic_ros.geometry.backproject import PanopticCloud  # noqa: E402
from depth_panoptic_ros.geometry.ground import GroundPlane  # noqa: E402
from depth_panoptic_ros.pipeline import Pipeline  # noqa: E402
from depth_panoptic_ros.products.bev_grid import BevProjector, GridConfig  # noqa: E402
from depth_panoptic_ros.ros.runtime import diagnostics as diag  # noqa: E402
from depth_panoptic_ros.ros.runtime.latest_slot import LatestSlot  # noqa: E402
from depth_panoptic_ros.ros.runtime.node import LOG_THROTTLE_S, WORKER_NAME  # noqa: E402
from depth_panoptic_ros.ros.runtime.parameters import DOCS, NodeParameters, declare_parameters, flatten  # noqa: E402
from depth_panoptic_ros.ros.runtime.transforms import TransformSource  # noqa: E402

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[1]
P_MONO = np.hstack([intrinsics(), np.zeros((3, 1))])


def matrix_parameter(matrix: np.ndarray) -> str:
    """A double-array parameter value for --ros-args (every value with a decimal point)."""
    return "[" + ", ".join(repr(float(v)) for v in np.ravel(matrix)) + "]"


T_PARAM = matrix_parameter(T_CAM_LIDAR)
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
TIMING = "depth_panoptic_node/timing"  # ~/timing, relative to the namespace
MONO_MAX_PIXELS = 20_000  # the mono node's limits.max_image_pixels
FRAME_OUTPUTS = {
    "panoptic/ids": Image,
    "panoptic/color": Image,
    "panoptic/depth_color": Image,
    "panoptic/depth": Image,
    "panoptic/depth/camera_info": CameraInfo,
    "panoptic/instances": pkg_msgs.InstanceDepthArray,
    "panoptic/points": PointCloud2,
    "panoptic/markers": MarkerArray,
    "panoptic/occupancy": OccupancyGrid,
    "panoptic/bev": Image,
    TIMING: pkg_msgs.FrameTiming,
}
GRID_OUTPUTS = ("panoptic/occupancy", "panoptic/bev")  # in the grid frame, base_link


@pytest.fixture(scope="module")
def context() -> Iterator[rclpy.Context]:
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, untrained checkpoint; without learned completion the LiDAR depth reaches the outputs unchanged."""
    torch = pytest.importorskip("torch")
    from test_model import tiny_config

    from depth_panoptic_ros.model import DepthPanopticModel, save_model

    torch.manual_seed(0)
    config = dataclasses.replace(tiny_config(), completion=None)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, DepthPanopticModel(config, ClassTable.cityscapes()).eval())
    return path


@pytest.fixture(scope="module")
def mono(
    context: rclpy.Context, tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MonoSession]:
    parameters = {
        "model_path": str(tiny_model_path),
        "use_tf": "false",
        "lidar_to_camera": T_PARAM,
        "camera_to_ground": matrix_parameter(GROUND_T_CAM),
        "cloud.organized": "true",
        "cloud.stride": "2",
        # just above the scene (160x96 = 15,360 pixels, 23,040 points): a small message can pass the byte budget
        "limits.max_image_pixels": str(MONO_MAX_PIXELS),
        "limits.max_cloud_points": "30000",
    }
    node = NodeProcess(tmp_path_factory.mktemp("mono") / "node.log", "mono", parameters)
    peer = Peer(context, "mono")
    peer.publisher(CameraInfo, "camera_info")
    peer.publisher(Image, "image")
    peer.publisher(PointCloud2, "lidar")
    for topic, msg_type in FRAME_OUTPUTS.items():
        peer.subscribe(msg_type, topic)
    peer.subscribe(pkg_msgs.ClassTable, "panoptic/classes", LATCHED)
    peer.subscribe(DiagnosticArray, "/diagnostics")
    try:
        peer.wait_for_node(node, FRAME_OUTPUTS)
        yield MonoSession(node, peer)
    finally:
        peer.close()
        node.stop()


# -- mono end to end -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_output_keeps_the_input_header_and_agrees_with_the_inputs(mono: MonoSession) -> None:
    stamp = mono.good_frame("panoptic/points")
    mono.peer.spin_until(lambda: all(mono.output(t, stamp) for t in FRAME_OUTPUTS), 10, "every output of one frame")
    out = {topic: mono.output(topic, stamp) for topic in FRAME_OUTPUTS}
    # output() matched the stamps
    assert all(header_of(msg).frame_id == CAMERA_FRAME for t, msg in out.items() if t not in GRID_OUTPUTS)
    assert all(out[t].header.frame_id == "base_link" for t in GRID_OUTPUTS)
    markers = out["panoptic/markers"].markers
    assert all((m.header.stamp, m.header.frame_id) == (stamp_msg(stamp), CAMERA_FRAME) for m in markers)

    # panoptic/depth: REP 118 32FC1, NaN where the classical completion of the projected LiDAR (the served depth:
    # learned_depth is off) leaves a pixel unknown, its value elsewhere; LiDAR pixels hold exactly the projected depth
    depth_msg = out["panoptic/depth"]
    assert (depth_msg.encoding, depth_msg.height, depth_msg.width) == ("32FC1", HEIGHT, WIDTH)
    depth = image_array(depth_msg)
    lidar = projected_depth(mono.points, T_CAM_LIDAR, P_MONO, (HEIGHT, WIDTH))
    hit = lidar > 0
    assert hit.sum() > 500
    np.testing.assert_allclose(depth[hit], lidar[hit], rtol=1e-5)
    expected = complete_depth(lidar, mono.rgb)
    assert not (depth <= 0).any() and np.isfinite(depth).mean() > 0.3
    np.testing.assert_array_equal(np.isnan(depth), expected == 0)
    np.testing.assert_allclose(depth[expected > 0], expected[expected > 0], rtol=1e-5)

    info = out["panoptic/depth/camera_info"]
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    np.testing.assert_allclose(np.reshape(info.k, (3, 3)), mono.K)
    np.testing.assert_allclose(np.reshape(info.p, (3, 4)), np.hstack([mono.K, np.zeros((3, 1))]))

    # panoptic/ids: 32SC1 class*1000 + instance over Cityscapes classes
    ids_msg = out["panoptic/ids"]
    assert ids_msg.encoding == "32SC1"
    ids = image_array(ids_msg)
    table = ClassTable.cityscapes()
    assert set(np.unique(ids // 1000).tolist()) <= set(table.ids.tolist()) | {0}
    for topic in ("panoptic/color", "panoptic/depth_color"):
        assert (out[topic].encoding, out[topic].height, out[topic].width) == ("rgb8", HEIGHT, WIDTH)

    # panoptic/instances: one entry per segment of the id image, statistics over the published depth
    instances = {i.panoptic_id: i for i in out["panoptic/instances"].instances}
    segments, counts = np.unique(ids[ids > 0], return_counts=True)
    assert sorted(instances) == segments.tolist()
    for segment, count in zip(segments.tolist(), counts.tolist(), strict=True):
        entry, inside = instances[segment], ids == segment
        valid = depth[inside & np.isfinite(depth)]
        assert (entry.pixel_count, entry.valid_depth_count) == (count, valid.size)
        assert entry.class_id == segment // 1000 and entry.class_name == table.names[table.class_index([segment])[0]]
        if valid.size:
            assert entry.depth_median == pytest.approx(np.median(valid), rel=1e-5)
            assert entry.depth_min == pytest.approx(valid.min(), rel=1e-6)

    # panoptic/markers: DELETEALL, then one label per thing with valid depth, at its centroid
    assert markers[0].action == Marker.DELETEALL
    things = {k: v for k, v in instances.items() if v.is_thing and v.valid_depth_count > 0}
    assert sorted(m.id for m in markers[1:]) == sorted(things)
    for marker in markers[1:]:
        centroid = things[marker.id].centroid
        assert (marker.pose.position.x, marker.pose.position.z) == (centroid.x, centroid.z)
        assert marker.text.endswith(f"{things[marker.id].depth_median:.1f} m")

    # panoptic/points: organized stride-2 cloud; every field read at its declared offset
    cloud = out["panoptic/points"]
    assert [(f.name, f.offset) for f in cloud.fields] == [
        ("x", 0),
        ("y", 4),
        ("z", 8),
        ("rgb", 12),
        ("label", 16),
        ("instance", 20),
    ]
    z = depth[::2, ::2]
    all_valid = bool((np.isfinite(z) & (z <= 80.0)).all())  # is_dense: no NaN point in the organized cloud
    assert (cloud.height, cloud.width, cloud.point_step, cloud.is_dense) == (HEIGHT // 2, WIDTH // 2, 24, all_valid)
    fields = cloud_fields(cloud)
    np.testing.assert_array_equal(np.isnan(fields["z"]), ~(np.isfinite(z) & (z <= 80.0)))
    valid = np.isfinite(fields["z"])
    np.testing.assert_allclose(fields["z"][valid], z[valid], rtol=1e-6)
    u = np.arange(0, WIDTH, 2)[None, :].repeat(HEIGHT // 2, axis=0)
    np.testing.assert_allclose(fields["x"][valid], ((u - mono.K[0, 2]) * z / FOCAL)[valid], rtol=1e-4, atol=1e-5)
    rgb = mono.rgb[::2, ::2].astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    np.testing.assert_array_equal(fields["rgb"].view(np.uint32), packed)
    np.testing.assert_array_equal(fields["instance"][valid], ids[::2, ::2][valid])
    np.testing.assert_array_equal(fields["label"][valid], ids[::2, ::2][valid] // 1000)

    # panoptic/occupancy and panoptic/bev: exactly the published cloud dropped on the default grid via camera_to_ground
    labeled = PanopticCloud(
        xyz=np.stack([fields["x"], fields["y"], fields["z"]], axis=-1),
        rgb=np.zeros(fields["x"].shape + (3,), np.uint8),
        label=fields["label"].astype(np.uint32),
        instance=fields["instance"].astype(np.uint32),
    )
    expected = BevProjector(GridConfig(), table)(labeled, GROUND_T_CAM)
    occupancy = out["panoptic/occupancy"]
    rows, cols = expected.occupancy.shape
    assert (occupancy.info.width, occupancy.info.height) == (cols, rows)
    assert occupancy.info.resolution == pytest.approx(0.2)  # float32 field
    np.testing.assert_array_equal(np.reshape(occupancy.data, (rows, cols)), expected.occupancy)
    np.testing.assert_array_equal(image_array(out["panoptic/bev"]), expected.ids)
    assert (expected.occupancy == 0).any() or (expected.occupancy == 100).any()

    timing = out[TIMING]
    assert {"inputs", "sparse_depth", "completion", "network", "cloud", "grid", "messages"} <= set(timing.stages)
    assert len(timing.stage_ms) == len(timing.stages) and timing.processing_ms >= max(timing.stage_ms)

    mono.peer.spin_until(lambda: mono.peer.received["panoptic/classes"], 10, "the latched class table")
    classes = mono.peer.received["panoptic/classes"][0]
    assert classes.label_divisor == 1000
    assert [(c.id, c.name, c.is_thing) for c in classes.classes] == [(c.id, c.name, c.is_thing) for c in table.classes]

    values = mono.diagnostic_values(lambda v: int(v[diag.PROCESSED]) > 0, 10, "diagnostics with processed frames")
    assert values[diag.MODEL].startswith("loaded") and int(values["received /mono/image"]) > 0


@pytest.mark.slow
def test_nan_and_inf_lidar_points_are_ignored(mono: MonoSession) -> None:
    points = mono.points.copy()
    points[::3, 0] = np.nan
    points[1::3, 2] = np.inf
    stamp = mono.next_stamp()
    mono.publish(stamp, cloud=cloud_msg(points, stamp))
    mono.peer.spin_until(lambda: mono.output("panoptic/depth", stamp), 30, "the depth of the NaN/inf cloud")
    depth = image_array(mono.output("panoptic/depth", stamp))
    lidar = projected_depth(points, T_CAM_LIDAR, P_MONO, (HEIGHT, WIDTH))
    hit = lidar > 0
    assert 0 < hit.sum() < (projected_depth(mono.points, T_CAM_LIDAR, P_MONO, (HEIGHT, WIDTH)) > 0).sum()
    np.testing.assert_allclose(depth[hit], lidar[hit], rtol=1e-5)


@pytest.mark.slow
def test_input_faster_than_the_model_drops_old_sets_and_latency_does_not_grow(mono: MonoSession) -> None:
    mono.good_frame(TIMING)
    rate_hz, count = 30.0, 90
    burst = []
    for _ in range(count):
        burst.append(mono.publish())
        mono.peer.spin_for(1 / rate_hz)
    mono.good_frame(TIMING)  # the burst is over once a later frame is answered
    wanted = {(stamp_msg(s).sec, stamp_msg(s).nanosec) for s in burst}
    timings = [t for t in mono.peer.received[TIMING] if stamp_of(t) in wanted]
    assert 0 < len(timings) < count, f"processed {len(timings)} of {count}"
    assert timings[-1].dropped_total > timings[0].dropped_total
    latency = np.array([t.latency_ms for t in timings])
    quarter = max(len(latency) // 4, 1)
    first, last = np.median(latency[:quarter]), np.median(latency[-quarter:])
    assert last <= 2 * first + 1000, f"latency grew from {first:.0f} ms to {last:.0f} ms: {latency.round()}"
    values = mono.diagnostic_values(lambda v: int(v[diag.DROPPED]) > 0, 10, "diagnostics counting drops")
    assert int(values[diag.SETS]) >= int(values[diag.PROCESSED]) + int(values[diag.DROPPED])


def _bad_encoding(s: MonoSession, stamp: float) -> None:
    s.publish(stamp, image=image_msg(s.rgb, stamp, encoding="bayer_rggb8"))


def _short_step(s: MonoSession, stamp: float) -> None:
    msg = image_msg(s.rgb, stamp)
    msg.step = WIDTH * 3 - 1
    s.publish(stamp, image=msg)


def _short_data(s: MonoSession, stamp: float) -> None:
    msg = image_msg(s.rgb, stamp)
    msg.data = msg.data[: len(msg.data) // 2]
    s.publish(stamp, image=msg)


def _size_differs_from_camera_info(s: MonoSession, stamp: float) -> None:
    s.publish(stamp, image=image_msg(s.rgb[:80, :120], stamp))


def _zero_focal_length(s: MonoSession, stamp: float) -> None:
    K = s.K.copy()
    K[0, 0] = K[1, 1] = 0.0
    info = camera_info_msg(K, HEIGHT, WIDTH, stamp)
    info.p = [0.0] * 12
    s.peer.publishers["camera_info"].publish(info)
    s.peer.spin_for(0.5)  # the bad info is cached before the set arrives
    s.publish(stamp, info=info)


def _truncated_cloud(s: MonoSession, stamp: float) -> None:
    msg = cloud_msg(s.points, stamp)
    msg.data = msg.data[:-8]
    s.publish(stamp, cloud=msg)


def _cloud_without_z(s: MonoSession, stamp: float) -> None:
    msg = cloud_msg(s.points, stamp)
    msg.fields[2].name = "ring"
    s.publish(stamp, cloud=msg)


def _empty_cloud(s: MonoSession, stamp: float) -> None:
    s.publish(stamp, cloud=cloud_msg(s.points[:0], stamp))


def _all_points_nan(s: MonoSession, stamp: float) -> None:
    s.publish(stamp, cloud=cloud_msg(np.full_like(s.points, np.nan), stamp))


BAD_INPUTS: dict[str, tuple[Callable[[MonoSession, float], None], str]] = {
    "unsupported encoding": (_bad_encoding, "unsupported image encoding 'bayer_rggb8'"),
    "step smaller than a row": (_short_step, "step 479 is smaller than one row"),
    "image data too short": (_short_data, "data holds 23040 bytes"),
    "image size differs from camera_info": (_size_differs_from_camera_info, "image is 120x80 but its camera model"),
    "zero focal length": (_zero_focal_length, "k: fx 0 px is implausible for 160 px across"),
    "truncated cloud": (_truncated_cloud, "data: holds 368632 bytes, expected row_step * height"),
    "cloud without z": (_cloud_without_z, "fields: lacks field 'z'"),
    "empty cloud": (_empty_cloud, "none of its 0 points is finite"),
    "all points NaN": (_all_points_nan, "none of its 23040 points is finite"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_skips_the_frame_and_the_node_keeps_answering(mono: MonoSession, case: str) -> None:
    send_bad, expected = BAD_INPUTS[case]
    mono.good_frame("panoptic/depth")
    bad = mono.next_stamp()
    send_bad(mono, bad)
    key = stamp_msg(bad)
    values = mono.diagnostic_values(
        lambda v: f"frame {key.sec}.{key.nanosec:09d} skipped" in v[diag.LAST_SKIP], 20, f"the skip of {case}"
    )
    assert expected in values[diag.LAST_SKIP]
    later = mono.good_frame("panoptic/depth")
    assert later > bad and mono.output("panoptic/depth", bad) is None
    assert mono.node.alive()


def _with_stamp(msg: Any, sec: int, nanosec: int) -> Any:
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    return msg


def _cloud_with_field(s: MonoSession, stamp: float, index: int, name: str, value: Any) -> None:
    msg = cloud_msg(s.points, stamp)
    setattr(msg.fields[index], name, value)
    s.publish(stamp, cloud=msg)


def _bad_info(s: MonoSession, stamp: float, change: Callable[[CameraInfo], None]) -> None:
    info = camera_info_msg(s.K, HEIGHT, WIDTH, stamp)
    change(info)
    s.peer.publishers["camera_info"].publish(info)
    s.peer.spin_for(0.3)  # cached before the set arrives
    s.publish(stamp, info=info)


def _oversized_image(s: MonoSession, stamp: float) -> None:
    msg = image_msg(s.rgb, stamp)
    msg.width = msg.height = 5000  # 25 MP declared: rejected on arrival, whatever the data holds
    s.publish(stamp, image=msg)


def _padded_image(stamp: float) -> Image:
    """The scene's 160x96 image with 100,000 bytes more data than its size declares."""
    msg = image_msg(textured_rgb(), stamp)
    msg.data = bytes(msg.data) + bytes(100_000)
    return msg


def _nanosec_overflow(s: MonoSession, stamp: float) -> None:
    sec = int(stamp)
    s.publish(
        stamp,
        image=_with_stamp(image_msg(s.rgb, stamp), sec, 2**32 - 1),
        cloud=_with_stamp(cloud_msg(s.points, stamp), sec, 2**32 - 1),
    )


# malformed set -> a field its rejection must name in the node's log
MALFORMED_SETS: dict[str, tuple[Callable[[MonoSession, float], None], str]] = {
    "nanosec 2^32-1": (_nanosec_overflow, "header.stamp.nanosec: 4294967295 is not in [0, 10^9)"),
    "sec -5": (
        lambda s, t: s.publish(
            t, image=_with_stamp(image_msg(s.rgb, t), -5, 0), cloud=_with_stamp(cloud_msg(s.points, t), -5, 0)
        ),
        "header.stamp.sec: -5 is negative",
    ),
    "sec INT32_MIN": (
        lambda s, t: s.publish(t, image=_with_stamp(image_msg(s.rgb, t), -(2**31), 0)),
        "header.stamp.sec: -2147483648 is negative",
    ),
    "count 0": (lambda s, t: _cloud_with_field(s, t, 3, "count", 0), "fields[3] ('intensity').count"),
    "overlapping fields": (lambda s, t: _cloud_with_field(s, t, 1, "offset", 2), "fields[1] ('y').offset"),
    "float64 over float32": (
        lambda s, t: _cloud_with_field(s, t, 0, "datatype", PointField.FLOAT64),
        "overlaps fields[0] ('x')",
    ),
    "duplicated x": (lambda s, t: _cloud_with_field(s, t, 3, "name", "x"), "fields[3] ('x'): duplicates"),
    "row_step": (
        lambda s, t: s.publish(t, cloud=_with_row_step(cloud_msg(s.points, t), 7)),
        "row_step: 7 is smaller than width * point_step",
    ),
    "K[2,2] = 0": (lambda s, t: _bad_info(s, t, lambda i: _set(i, "k", 8, 0.0)), "k[8]: expected 1, got 0"),
    "fx 1e-12": (
        lambda s, t: _bad_info(s, t, lambda i: (_set(i, "k", 0, 1e-12), _set(i, "p", 0, 1e-12))),
        "k: fx 1e-12 px is implausible",
    ),
    "distortion model": (
        lambda s, t: _bad_info(s, t, lambda i: setattr(i, "distortion_model", "fisheye9")),
        "distortion_model: unknown 'fisheye9'",
    ),
    "D NaN": (lambda s, t: _bad_info(s, t, lambda i: setattr(i, "d", [float("nan")] * 5)), "d: holds NaN or inf"),
    "oversized image": (_oversized_image, f"above limits.max_image_pixels {MONO_MAX_PIXELS}"),
    "huge data behind a small size": (
        lambda s, t: s.publish(t, image=_padded_image(t)),
        # rejected on arrival: 20,000 pixels x 4 bytes + 65,536 is the budget, which 46,080 + 100,000 bytes exceed
        f"image rejected: data: the {len(serialize_message(_padded_image(0.0)))}-byte message is above the "
        f"145536 bytes that limits.max_image_pixels {MONO_MAX_PIXELS} allows",
    ),
}


def _with_row_step(msg: PointCloud2, row_step: int) -> PointCloud2:
    msg.row_step = row_step
    return msg


def _set(msg: Any, name: str, index: int, value: float) -> None:
    values = list(getattr(msg, name))
    values[index] = value
    setattr(msg, name, values)


@pytest.mark.slow
def test_malformed_sets_interleaved_with_good_ones_leave_every_good_set_answered(mono: MonoSession) -> None:
    """Over real DDS: each malformed set is followed by a good one, which must be answered (outputs and timing),
    and the node's log names the rejected field."""
    mono.good_frame("panoptic/depth")
    for case, (send_bad, _) in MALFORMED_SETS.items():
        mono.peer.spin_for(LOG_THROTTLE_S)  # each rejection's warning gets past the per-input rate limit
        send_bad(mono, mono.next_stamp())
        mono.peer.spin_for(0.3)
        mono.peer.publishers["camera_info"].publish(camera_info_msg(mono.K, HEIGHT, WIDTH, mono.next_stamp()))
        mono.peer.spin_for(0.3)  # a valid CameraInfo is cached again before the good set arrives
        good = mono.publish()
        mono.peer.spin_until(
            lambda good=good: mono.output("panoptic/depth", good) is not None and mono.output(TIMING, good) is not None,
            30,
            f"the good set after {case!r}",
        )
        assert mono.output(TIMING, good).latency_ms >= 0
    log = mono.node.log()
    for case, (_, field) in MALFORMED_SETS.items():
        assert field in log, f"{case}: no warning naming {field!r}"
    assert "Traceback" not in log and mono.node.alive()


@pytest.mark.slow
def test_time_jumping_back_like_a_bag_loop_resets_and_continues(mono: MonoSession) -> None:
    mono.good_frame("panoptic/depth")
    restart = time.time() - 100.0
    stamps = []
    for k in range(40):
        stamps.append(mono.publish(stamp=restart + 0.1 * k))
        mono.peer.spin_for(0.3)
        if any(mono.output("panoptic/depth", s) for s in stamps):
            break
    assert any(mono.output("panoptic/depth", s) for s in stamps), mono.node.log()
    assert "stamp jumped back" in mono.node.log()


@pytest.mark.slow
def test_autostart_reaches_active_by_itself(mono: MonoSession) -> None:
    assert LifecycleClient(mono.peer).get() == "active"
    values = mono.diagnostic_values(lambda v: diag.LIFECYCLE in v, 10, "diagnostics")
    assert values[diag.LIFECYCLE] == "active"


@pytest.mark.slow
def test_signals_mid_frame_finish_the_frame_and_exit_cleanly(mono: MonoSession) -> None:
    """SIGINT, SIGINT, SIGTERM (a terminal's Ctrl-C, then ros2 launch's own signals) while a set is processed:
    the worker finishes that frame (no "worker still busy"), the process exits with 0.
    Stops the module's mono node, so it runs after the other mono tests (file order)."""
    mono.good_frame(TIMING)
    mono.publish()
    mono.peer.spin_for(0.1)  # the node is now inside the ~200 ms of inference of that set
    before = len(mono.node.log())
    for signum in (signal.SIGINT, signal.SIGINT, signal.SIGTERM):
        mono.node.process.send_signal(signum)
        time.sleep(0.02)
    code = mono.node.stop()
    log = mono.node.log()[before:]
    assert code == 0, log
    assert "Traceback" not in log and "[ERROR]" not in log and "worker still busy" not in log
    assert "terminate called" not in log and "stopping: the frame in progress is finished first" in log


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["start-up", "idle", "unconfigured"])
def test_any_signals_at_start_up_or_idle_exit_with_0(tiny_model_path: Path, tmp_path: Path, moment: str) -> None:
    """start-up: while Python imports, then while the model loads; idle: active without input; unconfigured:
    autostart false, waiting for a lifecycle transition."""
    parameters = {"model_path": str(tiny_model_path), "use_tf": "false", "lidar_to_camera": T_PARAM}
    if moment == "unconfigured":
        parameters["autostart"] = "false"
    node = NodeProcess(tmp_path / "node.log", f"stop_{moment.replace('-', '_')}", parameters)
    if moment == "start-up":
        delays = [0.8, 0.3, 0.3, 0.5]
    else:
        ready = "active: inputs /" if moment == "idle" else "waiting for `ros2 lifecycle set"
        deadline = time.monotonic() + 60
        while ready not in node.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready in node.log(), node.log()
        delays = [0.0, 0.01, 0.01, 0.01]
    for delay, signum in zip(delays, (signal.SIGINT, signal.SIGTERM, signal.SIGINT, signal.SIGINT), strict=True):
        time.sleep(delay)
        if node.alive():
            node.process.send_signal(signum)
    code = node.stop(timeout=60.0)  # signals during imports: the imports (torch, rclpy) still finish first
    log = node.log()
    assert code == 0, log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log and "terminate called" not in log, log


STOP_SIGNALS_CHILD = """
import sys, time
from depth_panoptic_ros.ros.runtime.main import StopSignals
stop = StopSignals().install()
print("ready", flush=True)
end = time.monotonic() + 2.0
while time.monotonic() < end:
    pass
sys.exit(0 if stop.requested else 3)
"""


def test_a_stream_of_signals_does_not_deadlock_the_stop_handler() -> None:
    """Python runs a signal handler between any two bytecodes of the main thread, also inside a run of the same
    handler. The earlier handler set a threading.Event, whose lock the nested run then waited for forever: under
    this stream every run hung (and a Ctrl-C pressed twice could hang the node). SIGINT and SIGTERM back to back
    for a second; the process must go on and exit by itself with 0."""
    child = subprocess.Popen(
        [sys.executable, "-c", STOP_SIGNALS_CHILD], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1]
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        end = time.monotonic() + 1.0
        while time.monotonic() < end and child.poll() is None:
            for signum in (signal.SIGINT, signal.SIGTERM):
                os.kill(child.pid, signum)
        assert child.wait(timeout=20) == 0
    finally:
        child.kill()
        child.wait()


# -- other node processes ----------------------------------------------------------------------------------------


PUBLISHER = Path(__file__).parent / "full_size_publisher.py"
LARGE_DATA = {"FASTDDS_DEFAULT_PROFILES_FILE": str(REPO / "config" / "fastdds_large_data.xml")}


def run_full_size_driver(
    context: rclpy.Context, tmp_path: Path, namespace: str, reliability: str, env: dict[str, str], points: int
) -> tuple[NodeProcess, dict[str, str]]:
    """The node (default QoS, no model) and a KITTI-size driver in another process, both with ``env``; returns
    the stopped node and its last diagnostic values."""
    parameters = {"model_path": "''", "use_tf": "false", "lidar_to_camera": T_PARAM, "no_sync_warning_s": "1.0"}
    node = NodeProcess(tmp_path / "node.log", namespace, parameters, env=env)
    peer = Peer(context, namespace)
    peer.subscribe(DiagnosticArray, "/diagnostics")
    command = [sys.executable, str(PUBLISHER), namespace, reliability, "8", "5", str(points)]
    # The driver starts once the node has subscribed without publishers (best effort), so that a reliable one is
    # always adapted to: a driver already in the graph at activation was subscribed reliable from the start.
    peer.spin_until(lambda: "active: inputs" in node.log(), 60, "the node to activate")
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})
        try:
            peer.spin_until(lambda: driver.poll() is not None, 120, "the driver to finish")
            peer.spin_for(2.0)
            values = {kv.key: kv.value for kv in peer.statuses()[-1].values}
        finally:
            driver.kill()
            peer.close()
            node.stop()
    driver_log = (tmp_path / "driver.log").read_text()
    assert driver.returncode == 0 and "subscribed: True" in driver_log and "acknowledged: True" in driver_log, (
        driver_log,
        node.log(),
    )
    return node, values


def assert_every_set_arrived(values: dict[str, str], namespace: str, node: NodeProcess) -> None:
    """All 8 full-size images and clouds arrived and made 8 sets. CameraInfo only needs to have arrived: the node
    keeps the newest of a keep-last-5 queue, and on a busy machine the small samples, delayed behind the image
    fragments of the default transports, arrived in a burst that overflowed it (6-7 of 8 counted: one CI run,
    and about 1 run in 10 beside three CPU burners)."""
    for topic in ("image", "lidar"):
        assert values[f"received /{namespace}/{topic}"] == "8", (values, node.log())
    assert values["synchronized sets"] == "8", (values, node.log())
    assert 1 <= int(values[f"received /{namespace}/camera_info"]) <= 8, (values, node.log())


@pytest.mark.slow
def test_a_reliable_full_size_driver_reaches_the_node_with_default_qos(context: rclpy.Context, tmp_path: Path) -> None:
    node, values = run_full_size_driver(context, tmp_path, "reliable_driver", "reliable", {}, 120_000)
    assert "/reliable_driver/lidar: publishers changed; subscription is now reliable" in node.log()
    assert_every_set_arrived(values, "reliable_driver", node)


@pytest.mark.slow
def test_a_best_effort_full_size_driver_reaches_the_node_with_the_shipped_profile(
    context: rclpy.Context, tmp_path: Path
) -> None:
    node, values = run_full_size_driver(context, tmp_path, "best_effort_driver", "best_effort", LARGE_DATA, 120_000)
    assert "subscription is now" not in node.log()  # best effort from the start, as its publishers
    assert_every_set_arrived(values, "best_effort_driver", node)


@pytest.mark.slow
def test_large_samples_lost_by_the_default_transports_are_diagnosed(context: rclpy.Context, tmp_path: Path) -> None:
    """A best-effort 2M-point (32 MB) cloud never crosses Fast DDS's default transports; its CameraInfo does."""
    node, values = run_full_size_driver(context, tmp_path, "lossy_driver", "best_effort", {}, 2_000_000)
    assert values["received /lossy_driver/lidar"] == "0" and int(values["received /lossy_driver/camera_info"]) > 0
    log = node.log()
    assert "/lossy_driver/lidar has a best-effort publisher matched" in log, log
    assert "LARGE_DATA" in log and "config/fastdds_large_data.xml (launch files: large_data:=true)" in log


@pytest.mark.slow
def test_stereo_compressed_pair_gives_depth_from_disparity(context: rclpy.Context, tmp_path: Path) -> None:
    import cv2

    disparity, baseline = 8, 0.5
    config = tmp_path / "pipeline.yaml"
    config.write_text("stereo:\n  num_disparities: 32\n")
    parameters = {"mode": "stereo", "use_lidar": "false", "model_path": "''", "use_compressed": "true"}
    node = NodeProcess(tmp_path / "node.log", "stereo", {**parameters, "pipeline_config": str(config)})
    peer = Peer(context, "stereo")
    left = textured_rgb(seed=1)
    right = np.concatenate([left[:, disparity:], textured_rgb(seed=2)[:, :disparity]], axis=1)
    for side in ("left", "right"):
        peer.publisher(CompressedImage, f"{side}/image/compressed")
        peer.publisher(CameraInfo, f"{side}/camera_info")
    peer.subscribe(Image, "panoptic/depth")
    try:
        peer.wait_for_node(node, ["panoptic/depth"])
        stamps = []
        for _ in range(60):
            stamp = time.time()
            stamps.append((stamp_msg(stamp).sec, stamp_msg(stamp).nanosec))
            for side, rgb, b in (("left", left, 0.0), ("right", right, baseline)):
                peer.publishers[f"{side}/camera_info"].publish(camera_info_msg(intrinsics(), HEIGHT, WIDTH, stamp, b))
                png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
                msg = CompressedImage(format="rgb8; png compressed bgr8", data=png)
                msg.header.stamp, msg.header.frame_id = stamp_msg(stamp), CAMERA_FRAME
                peer.publishers[f"{side}/image/compressed"].publish(msg)
            peer.spin_for(0.4)
            if peer.received["panoptic/depth"]:
                break
        assert peer.received["panoptic/depth"], node.log()
    finally:
        peer.close()
        node.stop()
    msg = peer.received["panoptic/depth"][0]
    assert stamp_of(msg) in stamps and msg.header.frame_id == CAMERA_FRAME
    depth = image_array(msg)[:, 40:-8]  # SGBM leaves the first num_disparities columns unmatched
    expected = FOCAL * baseline / disparity
    assert np.isfinite(depth).mean() > 0.9
    assert np.nanmedian(depth) == pytest.approx(expected, rel=0.01)
    assert np.nanmean(np.abs(depth - expected) < 0.03 * expected) > 0.9


def _kitti_calibration(path: Path) -> dict[str, np.ndarray]:
    rows = (line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
    return {key: np.array(values.split(), dtype=np.float64) for key, values in rows}


@pytest.mark.slow
def test_real_kitti_frame_depth_matches_the_velodyne_projection(
    context: rclpy.Context, kitti_object: Path, tmp_path: Path
) -> None:
    """A full HDL-64 sweep and a 1242x375 image through DDS; P2 has a fourth column (KITTI's camera offset)."""
    import cv2

    calib = _kitti_calibration(kitti_object / "calib" / "000000.txt")
    P2 = calib["P2"].reshape(3, 4)
    R0, Tr = np.eye(4), np.eye(4)
    R0[:3, :3], Tr[:3] = calib["R0_rect"].reshape(3, 3), calib["Tr_velo_to_cam"].reshape(3, 4)
    rgb = cv2.cvtColor(cv2.imread(str(kitti_object / "image_2" / "000000.png")), cv2.COLOR_BGR2RGB)
    points = np.fromfile(kitti_object / "velodyne" / "000000.bin", dtype=np.float32).reshape(-1, 4)
    height, width = rgb.shape[:2]

    parameters = {"model_path": "''", "use_tf": "false", "lidar_to_camera": matrix_parameter(R0 @ Tr)}
    node = NodeProcess(tmp_path / "node.log", "kitti", parameters)
    peer = Peer(context, "kitti")
    for msg_type, topic in ((CameraInfo, "camera_info"), (Image, "image"), (PointCloud2, "lidar")):
        peer.publisher(msg_type, topic)
    peer.subscribe(Image, "panoptic/depth")
    try:
        peer.wait_for_node(node, ["panoptic/depth"])
        for _ in range(40):
            stamp = time.time()
            info = camera_info_msg(P2[:, :3], height, width, stamp)
            info.p = P2.ravel().tolist()
            peer.publishers["camera_info"].publish(info)
            peer.publishers["image"].publish(image_msg(rgb, stamp))
            peer.publishers["lidar"].publish(cloud_msg(points, stamp))
            peer.spin_for(0.5)
            if peer.received["panoptic/depth"]:
                break
        assert peer.received["panoptic/depth"], node.log()
    finally:
        peer.close()
        node.stop()
    depth = image_array(peer.received["panoptic/depth"][0])
    assert depth.shape == (height, width) == (370, 1224)
    lidar = projected_depth(points, R0 @ Tr, P2, (height, width))
    hit = lidar > 0
    assert 15_000 < hit.sum() < 21_000  # ~18k of the sweep's points fall inside the image
    np.testing.assert_allclose(depth[hit], lidar[hit], rtol=1e-5)


def _values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


@pytest.mark.slow
def test_qos_mismatch_and_silent_lidar_are_reported_and_ctrl_c_exits(context: rclpy.Context, tmp_path: Path) -> None:
    parameters = {"use_tf": "false", "lidar_to_camera": T_PARAM, "no_sync_warning_s": "1.0", "model_path": "''"}
    reliable_lidar = ["-p", "qos_overrides./qos/lidar.subscription.reliability:=reliable"]
    node = NodeProcess(tmp_path / "node.log", "qos", parameters, reliable_lidar, script=True)
    peer = Peer(context, "qos")
    peer.publisher(CameraInfo, "camera_info")
    peer.publisher(Image, "image")
    lidar = peer.publisher(PointCloud2, "lidar", reliable=False)
    peer.subscribe(DiagnosticArray, "/diagnostics")
    session = MonoSession(node, peer)
    try:
        peer.spin_until(
            lambda: peer.publishers["image"].get_subscription_count() > 0 and peer.statuses(),
            60,
            "the node to start",
        )
        assert lidar.get_subscription_count() == 0  # incompatible: never matched
        peer.spin_until(lambda: peer.incompatible, 10, "the incompatible-QoS event on the test side")
        assert set(peer.incompatible) == {"lidar"}
        statuses: list[DiagnosticStatus] = []

        def reported() -> bool:
            session.publish()
            statuses.extend(s for s in peer.statuses() if s.level == s.WARN)
            log = node.log()
            warned = "incompatible reliability" in log and "nothing received for 1 s on /qos/lidar" in log
            # the image subscription adapts to its reliable publisher within a report period: wait for its data
            return warned and statuses and int(_values(statuses[-1])["received /qos/image"]) > 0

        peer.spin_until(reported, 30, "QoS and silent-topic warnings")
        assert peer.node.count_publishers("/qos/panoptic/ids") == 0
        assert peer.node.count_publishers("/qos/panoptic/depth") == 1
    finally:
        peer.close()
        code = node.stop()
    log = node.log()
    assert "qos_overrides./qos/lidar.subscription.reliability to best_effort" in log
    values = {kv.key: kv.value for kv in statuses[-1].values}
    assert values[diag.MODEL].startswith("none: model_path is empty")
    assert "/qos/lidar" in values[diag.SYNC] and int(values["received /qos/image"]) > 0
    assert code == 0 and "Traceback" not in log


def test_invalid_parameter_ends_the_node_with_one_clear_line(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "node.log", "bad_parameter", {"mode": "fisheye", "model_path": "''"})
    try:
        node.process.wait(60)
    finally:
        code = node.stop()
    log = node.log()
    assert code == 1 and "cannot start" in log and "mode: expected one of mono, stereo, got 'fisheye'" in log
    assert "Traceback" not in log


# -- in-process: parameters, output selection, missing TF --------------------------------------------------------


@pytest.fixture
def in_process(context: rclpy.Context) -> Iterator[Callable[..., object]]:
    """Builds DepthPanopticNode in this process (destroyed after the test)."""
    from depth_panoptic_ros.ros.runtime.node import DepthPanopticNode

    nodes = []

    def build(namespace: str, **overrides: object) -> DepthPanopticNode:
        base = {"model_path": "", "use_tf": False, "lidar_to_camera": T_CAM_LIDAR.ravel().tolist(), **overrides}
        params = [Parameter(k, value=v) for k, v in base.items()]
        nodes.append(DepthPanopticNode(context=context, namespace=namespace, parameter_overrides=params))
        return nodes[-1]

    yield build
    for node in nodes:
        node.destroy_node()


def test_parameter_file_states_every_declared_default() -> None:
    data = yaml.safe_load((REPO / "config" / "depth_panoptic.yaml").read_text())
    params = data["/**/depth_panoptic_node"]["ros__parameters"]
    params.pop("qos_overrides", None)
    assert flatten_yaml(params) == flatten(NodeParameters())
    assert set(DOCS) == set(flatten(NodeParameters()))


def flatten_yaml(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten_yaml(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_parameters_are_declared_read_only_with_ranges(context: rclpy.Context) -> None:
    node = rclpy.create_node("params_test", context=context, parameter_overrides=[Parameter("sync_slop", value=0.1)])
    try:
        params = declare_parameters(node)
        assert params.sync_slop == 0.1 and params.cloud.stride == 2 and params.lidar_to_camera == ()
        slop, stride, mode = node.describe_parameters(["sync_slop", "cloud.stride", "mode"])
        assert slop.read_only and slop.floating_point_range[0].to_value == 10.0 and slop.description
        assert stride.integer_range[0].from_value == 1
        assert mode.additional_constraints == "one of: mono, stereo"
    finally:
        node.destroy_node()


def test_british_parameter_name_still_works_with_a_deprecation_warning(
    context: rclpy.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = [Parameter("cloud.organised", value=True)]
    node = rclpy.create_node("renamed_params_test", context=context, parameter_overrides=old)
    warnings: list[str] = []
    monkeypatch.setattr(node.get_logger(), "warning", warnings.append)
    try:
        assert declare_parameters(node).cloud.organized
        assert warnings == ["parameter cloud.organised is deprecated, use cloud.organized (the old name goes in 0.2)"]
        assert node.describe_parameters(["cloud.organised"])[0].description == "deprecated: use cloud.organized"
    finally:
        node.destroy_node()
    both = [Parameter("cloud.organised", value=False), Parameter("cloud.organized", value=True)]
    node = rclpy.create_node("renamed_params_test", context=context, parameter_overrides=both)
    try:
        with pytest.raises(ValueError, match="cloud.organised: deprecated name of cloud.organized, and both are set"):
            declare_parameters(node)
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"mode": "fisheye"}, ValueError, "mode: expected one of mono, stereo"),
        ({"precision": "int8"}, ValueError, "precision: expected one of fp32, bf16, fp16"),
        ({"device": "tpu"}, ValueError, "device: expected cpu, cuda or cuda:N"),
        ({"use_lidar": False}, ValueError, "mono mode needs the LiDAR"),
        ({"use_tf": False}, ValueError, "lidar_to_camera: use_tf is false"),
        ({"sync_slop": 50.0}, ParameterException, "out of range"),
        ({"sync_queue_size": 0}, ParameterException, "out of range"),
        ({"cloud.stride": 1.5}, ParameterException, "expecting type 'INTEGER'"),
    ],
)
def test_invalid_parameters_name_the_parameter(
    context: rclpy.Context, overrides: dict, error: type[Exception], message: str
) -> None:
    params = [Parameter(k, value=v) for k, v in overrides.items()]
    node = rclpy.create_node("bad_params_test", context=context, parameter_overrides=params)
    try:
        with pytest.raises(error, match=message.replace("(", r"\(")):
            declare_parameters(node)
    finally:
        node.destroy_node()


def _feed(peer: Peer, stamp: float) -> None:
    peer.publishers["camera_info"].publish(camera_info_msg(intrinsics(), HEIGHT, WIDTH, stamp))
    peer.publishers["image"].publish(image_msg(textured_rgb(), stamp))
    peer.publishers["lidar"].publish(cloud_msg(lidar_points(), stamp))


@pytest.fixture
def input_peer(context: rclpy.Context) -> Iterator[Callable[[str], Peer]]:
    """Builds a peer publishing the mono inputs in a namespace (closed after the test)."""
    peers = []

    def build(namespace: str) -> Peer:
        peers.append(Peer(context, namespace))
        for msg_type, topic in ((CameraInfo, "camera_info"), (Image, "image"), (PointCloud2, "lidar")):
            peers[-1].publisher(msg_type, topic)
        peers[-1].subscribe(DiagnosticArray, "/diagnostics")
        return peers[-1]

    yield build
    for peer in peers:
        peer.close()


@pytest.mark.slow
def test_only_outputs_with_subscribers_are_computed(
    in_process: Callable[..., object], input_peer: Callable[[str], Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    requested: list[frozenset[str]] = []
    measure = Pipeline.measure

    def recording_measure(self: Pipeline, frame: object, outputs: frozenset[str]) -> object:
        requested.append(frozenset(outputs))
        return measure(self, frame, outputs)

    monkeypatch.setattr(Pipeline, "measure", recording_measure)
    peer = input_peer("output_selection")
    peer.executor.add_node(in_process("output_selection"))

    def sets_until(done: Callable[[], bool], what: str) -> None:
        def step() -> bool:
            _feed(peer, time.time())
            peer.spin_for(0.2)
            return done()

        peer.spin_until(step, 30, what)

    sets_until(lambda: int(peer.last_value(diag.IDLE, "0")) > 0, "sets counted as idle without subscribers")
    assert requested == []
    peer.subscribe(Image, "panoptic/depth")
    sets_until(lambda: peer.received["panoptic/depth"], "depth only")
    assert requested[-1] == {"depth"} and not peer.received["panoptic/points"]
    peer.subscribe(PointCloud2, "panoptic/points")
    sets_until(lambda: peer.received["panoptic/points"], "depth and points")
    assert requested[-1] == {"depth", "cloud"}


@pytest.mark.slow
def test_missing_transform_skips_the_frame(
    in_process: Callable[..., object], input_peer: Callable[[str], Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_transform(self: TransformSource, camera_frame: str, lidar_frame: str, stamp: object) -> np.ndarray:
        raise LookupError(f"no transform {lidar_frame} -> {camera_frame}")

    monkeypatch.setattr(TransformSource, "lookup", no_transform)
    peer = input_peer("missing_tf")
    peer.executor.add_node(in_process("missing_tf"))
    peer.subscribe(Image, "panoptic/depth")

    def skipped() -> bool:
        _feed(peer, time.time())
        peer.spin_for(0.2)
        return "no transform lidar -> camera_optical_frame" in peer.last_value(diag.LAST_SKIP, "")

    peer.spin_until(skipped, 30, "the missing-transform skip in diagnostics")
    assert not peer.received["panoptic/depth"]


# -- lifecycle: transitions over the node's real services ------------------------------------------------------------


def _workers() -> int:
    """The worker threads of every node in this process (with look_ahead a node has two)."""
    return sum(t.name.startswith(WORKER_NAME) for t in threading.enumerate())


def _state_reported(peer: Peer, state: str) -> DiagnosticStatus:
    """The first status naming lifecycle ``state`` that arrives from now on."""
    seen = len(peer.statuses())

    def found() -> list[DiagnosticStatus]:
        return [s for s in peer.statuses()[seen:] if _values(s).get(diag.LIFECYCLE) == state]

    peer.spin_until(lambda: bool(found()), 10, f"diagnostics naming the state {state}")
    return found()[0]


@pytest.mark.slow
def test_a_frame_without_ground_is_answered_and_its_unchecked_things_are_logged(
    in_process: Callable[..., object], input_peer: Callable[[str], Peer], tiny_model_path: Path
) -> None:
    """The scene's sweep has a ground plane; a sweep that hits only the surrounding wall has none, and without TF
    and camera_to_ground there is no ground transform: the thing geometry check cannot run, the frame is still
    answered, and the warning says why (once per frame here: the logger is replaced, its throttle with it)."""
    node = in_process("no_ground", model_path=str(tiny_model_path))
    warnings: list[str] = []
    node._loggers["pipeline"] = type("Logger", (), {"warning": lambda self, text, **_: warnings.append(text)})()
    peer = input_peer("no_ground")
    peer.executor.add_node(node)
    peer.subscribe(Image, "panoptic/ids")
    wall_only = lidar_sweep(beams=32, azimuths=720, height=1e3, wall=15.0)
    for points, expected in ((lidar_points(), False), (wall_only, True)):
        before = len(warnings)
        _feed_until_answered(peer, points, "panoptic/ids")
        got = warnings[before:]
        assert bool(got) == expected, got
        assert all("no ground plane in this frame's LiDAR" in text and "camera_to_ground empty" in text for text in got)


@pytest.mark.slow
def test_a_frame_without_ground_is_checked_against_camera_to_ground_without_a_grid_subscriber(
    in_process: Callable[..., object],
    input_peer: Callable[[str], Peer],
    tiny_model_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With camera_to_ground set and nobody on the grid topics, only the wall-only sweep (no ground in its LiDAR)
    looks the transform up (without a TF wait) and takes its plane for the thing check; nothing is logged about
    unchecked things."""
    planes: list[tuple[np.ndarray, float]] = []
    check_against_transform = Pipeline.check_against_transform

    def recording(self: Pipeline, frame: SensorFrame, products: object) -> None:
        check_against_transform(self, frame, products)
        planes.append((products.ground.normal, products.ground.offset))

    monkeypatch.setattr(Pipeline, "check_against_transform", recording)
    lookups: list[tuple[str, bool]] = []
    lookup = TransformSource.lookup

    def recording_lookup(self: TransformSource, target: str, source: str, stamp: object, wait: bool = True) -> object:
        lookups.append((target, wait))
        return lookup(self, target, source, stamp, wait)

    monkeypatch.setattr(TransformSource, "lookup", recording_lookup)
    node = in_process(
        "ground_transform", model_path=str(tiny_model_path), camera_to_ground=GROUND_T_CAM.ravel().tolist()
    )
    warnings: list[str] = []
    node._loggers["pipeline"] = type("Logger", (), {"warning": lambda self, text, **_: warnings.append(text)})()
    peer = input_peer("ground_transform")
    peer.executor.add_node(node)
    peer.subscribe(Image, "panoptic/ids")
    _feed_until_answered(peer, lidar_points(), "panoptic/ids")
    assert planes == [] and ("base_link", False) not in lookups  # its LiDAR shows the ground: no lookup
    _feed_until_answered(peer, lidar_sweep(beams=32, azimuths=720, height=1e3, wall=15.0), "panoptic/ids")
    expected = GroundPlane.from_transform(GROUND_T_CAM)
    assert planes and all(np.array_equal(n, expected.normal) and o == expected.offset for n, o in planes)
    assert {target for target, wait in lookups if not wait} == {"base_link"}  # a fallback does not wait for TF
    assert warnings == []


def _feed_until_answered(peer: Peer, points: np.ndarray, topic: str) -> None:
    """Publishes the mono scene with ``points`` as its sweep until the node answers one of the sets on ``topic``."""
    stamps: list[float] = []

    def answered() -> bool:
        stamps.append(time.time())
        peer.publishers["camera_info"].publish(camera_info_msg(intrinsics(), HEIGHT, WIDTH, stamps[-1]))
        peer.publishers["image"].publish(image_msg(textured_rgb(), stamps[-1]))
        peer.publishers["lidar"].publish(cloud_msg(points, stamps[-1]))
        peer.spin_for(0.3)
        return bool(_stamps(peer, topic) & {_as_key(stamp) for stamp in stamps})

    peer.spin_until(answered, 30, f"an answered set on {topic}")


def _feed_for(peer: Peer, seconds: float) -> list[float]:
    """Publishes input sets for ``seconds``; returns their stamps."""
    stamps = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stamps.append(time.time())
        _feed(peer, stamps[-1])
        peer.spin_for(0.2)
    return stamps


def _stamps(peer: Peer, topic: str) -> set[tuple[int, int]]:
    return {stamp_of(m) for m in peer.received[topic]}


def _as_key(stamp: float) -> tuple[int, int]:
    msg = stamp_msg(stamp)
    return msg.sec, msg.nanosec


@pytest.mark.slow
def test_lifecycle_configure_activate_deactivate_cleanup_shutdown(
    in_process: Callable[..., object], input_peer: Callable[[str], Peer], tiny_model_path: Path
) -> None:
    """autostart false, then `ros2 lifecycle set` step by step: nothing is published before activation or while
    inactive, the model survives deactivation, a second activation works without leaks, cleanup frees the model,
    a second configure works, shutdown from inactive releases everything."""
    peer = input_peer("lifecycle")
    node = in_process("lifecycle", model_path=str(tiny_model_path), autostart=False)
    peer.executor.add_node(node)
    peer.subscribe(Image, "panoptic/depth")
    peer.subscribe(pkg_msgs.ClassTable, "panoptic/classes", LATCHED)
    life = LifecycleClient(peer)
    image_input = peer.publishers["image"]

    assert life.get() == "unconfigured"
    status = _state_reported(peer, "unconfigured")
    assert status.level == DiagnosticStatus.OK and _values(status)[diag.MODEL] == diag.NOT_LOADED.description
    assert peer.node.count_publishers("panoptic/depth") == 0 and image_input.get_subscription_count() == 0
    assert life.set("activate") is False  # not a transition of unconfigured

    assert life.set("configure") and life.get() == "inactive"
    assert _values(_state_reported(peer, "inactive"))[diag.MODEL].startswith(f"loaded {tiny_model_path}")
    assert peer.node.count_publishers("panoptic/depth") == 1 and image_input.get_subscription_count() == 0
    unconfigured_and_inactive = _feed_for(peer, 1.0)
    assert not peer.received["panoptic/depth"] and not peer.received["panoptic/classes"]
    model = weakref.ref(node._pipeline.model)

    def processed(stamps: list[float]) -> bool:
        stamps.extend(_feed_for(peer, 0.4))
        return bool(_stamps(peer, "panoptic/depth") & {_as_key(s) for s in stamps})

    resources = []
    for _ in range(2):  # activate twice: the second activation works as the first, without leaks
        assert life.set("activate") and life.get() == "active"
        active: list[float] = []
        peer.spin_until(lambda active=active: processed(active), 60, "outputs of an active node")
        assert _values(_state_reported(peer, "active"))[diag.PROCESSED] != "0"
        assert len(peer.received["panoptic/classes"]) >= 1
        resources.append(
            (_workers(), len(list(node.subscriptions)), len(list(node.timers)), len(list(node.publishers)))
        )
        assert life.set("deactivate") and life.get() == "inactive"
        assert _workers() == 0 and image_input.get_subscription_count() == 0 and node._pipeline.model is model()
        answered = len(peer.received["panoptic/depth"])
        inactive = _feed_for(peer, 1.0)
        assert len(peer.received["panoptic/depth"]) == answered  # the sets published while inactive: no output
        unconfigured_and_inactive += inactive
    assert resources[0] == resources[1] and resources[0][0] == 1, resources
    assert not _stamps(peer, "panoptic/depth") & {_as_key(s) for s in unconfigured_and_inactive}

    assert life.set("cleanup") and life.get() == "unconfigured"
    assert node._pipeline is None and model() is None  # freed by cleanup itself: no reference left, not even a cycle
    assert peer.node.count_publishers("panoptic/depth") == 0
    _state_reported(peer, "unconfigured")
    assert life.set("configure") and peer.node.count_publishers("panoptic/depth") == 1  # configures again
    assert life.set("shutdown") and life.get() == "finalized"  # from inactive: releases as cleanup does
    assert node._pipeline is None and peer.node.count_publishers("panoptic/depth") == 0


def _publish_set(peer: Peer, index: int, stamp: float, encoding: str = "rgb8") -> None:
    """Set ``index`` of a stream whose image and sweep change from set to set (every set's outputs differ)."""
    peer.publishers["camera_info"].publish(camera_info_msg(intrinsics(), HEIGHT, WIDTH, stamp))
    peer.publishers["image"].publish(image_msg(textured_rgb(seed=index % 5), stamp, encoding=encoding))
    peer.publishers["lidar"].publish(cloud_msg(lidar_points() * np.float32(1 + 0.03 * (index % 5)), stamp))


@pytest.mark.slow
def test_look_ahead_answers_a_stream_as_the_node_without_it(
    in_process: Callable[..., object], input_peer: Callable[[str], Peer], tiny_model_path: Path
) -> None:
    """Two nodes with the tiny model get the same stream of changing sets, one with look_ahead: each answers in
    stamp order, and every stamp both answer has the same depth and ids. The look-ahead node then skips and counts
    a malformed set (its measure stage) and a set whose Pipeline.finish fails (its finish stage), answers the next
    good set, and leaves no thread behind over deactivate / activate."""
    topics = ("panoptic/ids", "panoptic/depth")
    peers, nodes = {}, {}
    for ahead in (False, True):
        namespace = f"look_ahead_{str(ahead).lower()}"
        nodes[ahead] = in_process(namespace, model_path=str(tiny_model_path), look_ahead=ahead)
        peers[ahead] = input_peer(namespace)
        peers[ahead].executor.add_node(nodes[ahead])
        for topic in topics:
            peers[ahead].subscribe(Image, topic)
    sent: list[float] = []

    def send(encoding: str = "rgb8") -> float:
        sent.append(time.time())
        for peer in peers.values():
            _publish_set(peer, len(sent), sent[-1], encoding)
            peer.spin_for(0.03)  # about the nodes' pace: sets arrive while others are processed
        return sent[-1]

    def sending_until(done: Callable[[], bool], what: str) -> None:
        def step() -> bool:
            send()
            return done()

        peers[True].spin_until(step, 120, what)

    def answered_by_both() -> set[tuple[int, int]]:
        return set.intersection(*(_stamps(peer, topic) for peer in peers.values() for topic in topics))

    sending_until(lambda: len(answered_by_both()) >= 4, "4 sets answered by both nodes")
    for ahead, peer in peers.items():
        order = [stamp_of(m) for m in peer.received["panoptic/ids"]]
        assert order == sorted(set(order)), f"look_ahead {ahead}: answers out of order"
    for stamp in answered_by_both():
        for topic in topics:
            off, on = (next(m for m in peer.received[topic] if stamp_of(m) == stamp) for peer in peers.values())
            np.testing.assert_array_equal(image_array(on), image_array(off), err_msg=f"{topic} of {stamp}")

    assert nodes[False].trigger_deactivate() == TransitionCallbackReturn.SUCCESS and _workers() == 2
    node, peer = nodes[True], peers[True]
    finish = node._pipeline.finish
    failing = [True]

    def finish_failing_once(*args: object) -> object:
        if failing:
            failing.clear()
            raise ValueError("finish failed")
        return finish(*args)

    # Malformed sets until one is skipped: a single one can be lost while the node's inputs switch to reliable
    # (publishers changed) under the stream.
    bad: list[float] = []
    unsupported = "unsupported image encoding 'bayer_rggb8'"

    def malformed_skipped() -> bool:
        bad.append(send("bayer_rggb8"))
        return unsupported in peer.last_value(diag.LAST_SKIP, "")

    peer.spin_until(malformed_skipped, 30, "a malformed set skipped")
    _feed_until_answered(peer, lidar_points(), "panoptic/ids")  # every malformed set before it is done with
    assert not {_as_key(stamp) for stamp in bad} & _stamps(peer, "panoptic/ids")
    skipped = node._stats.snapshot().skipped
    node._pipeline.finish = finish_failing_once  # this test's own node and pipeline
    sending_until(lambda: "finish failed" in peer.last_value(diag.LAST_SKIP, ""), "the set whose finish failed skipped")
    _feed_until_answered(peer, lidar_points(), "panoptic/ids")
    assert node._stats.snapshot().skipped == skipped + 1
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS and _workers() == 0
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS and _workers() == 2
    _feed_until_answered(peer, lidar_points(), "panoptic/ids")


@pytest.mark.slow
def test_a_model_that_cannot_be_loaded_fails_configure_and_a_fixed_file_configures(
    in_process: Callable[..., object], input_peer: Callable[[str], Peer], tiny_model_path: Path, tmp_path: Path
) -> None:
    """With autostart, a corrupt model leaves the node unconfigured (ERROR in the diagnostics, no crash, no
    output); once the file is fixed, `ros2 lifecycle set ... configure` succeeds."""
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"not a model")
    peer = input_peer("bad_model")
    node = in_process("bad_model", model_path=str(model))
    peer.executor.add_node(node)
    life = LifecycleClient(peer)
    assert life.get() == "unconfigured"
    status = _state_reported(peer, "unconfigured")
    assert status.level == DiagnosticStatus.ERROR
    assert f"configure failed: cannot load model_path '{model}'" in status.message, status.message
    assert "not a readable safetensors file" in status.message
    assert peer.node.count_publishers("panoptic/depth") == 0
    assert life.set("configure") is False and life.get() == "unconfigured"

    model.write_bytes(tiny_model_path.read_bytes())
    assert life.set("configure") and life.get() == "inactive"
    assert _state_reported(peer, "inactive").level == DiagnosticStatus.OK


@pytest.mark.slow
def test_an_unconfigured_node_process_ends_with_0_on_the_shutdown_transition(
    context: rclpy.Context, tmp_path: Path
) -> None:
    parameters = {"model_path": "''", "use_tf": "false", "lidar_to_camera": T_PARAM, "autostart": "false"}
    node = NodeProcess(tmp_path / "node.log", "lifecycle_process", parameters)
    peer = Peer(context, "lifecycle_process")
    try:
        life = LifecycleClient(peer)
        assert life.get() == "unconfigured"
        assert peer.node.count_publishers("panoptic/depth") == 0
        assert life.set("shutdown")
        node.process.wait(20)
    finally:
        peer.close()
        code = node.stop()
    log = node.log()
    assert code == 0 and "Traceback" not in log, log
    assert "waiting for `ros2 lifecycle set /lifecycle_process/depth_panoptic_node configure`" in log


# -- pure units ----------------------------------------------------------------------------------------------------


def _snapshot(sets: int = 0, processed: int = 0, skipped: int = 0, latency: tuple = (), idle: int = 0) -> diag.Snapshot:
    return diag.Snapshot(sets, processed, idle, skipped, "frame 1.0 skipped: x" if skipped else "", latency, latency)


def test_a_pipeline_config_changing_the_model_s_completion_is_logged_once_and_diagnosed(tmp_path: Path) -> None:
    from test_model import tiny_model

    from depth_panoptic_ros.model import save_model
    from depth_panoptic_ros.ros.runtime.node import load_node_pipeline

    model = tiny_model()
    model.pipeline_settings = {"completion": {"extend_px": 16}}
    save_model(tmp_path / "m.safetensors", model)
    config = tmp_path / "pipeline.yaml"
    config.write_text("completion: {extend_px: 48}\ncloud: {stride: 9}\n")

    class Logger:
        def __init__(self) -> None:
            self.warnings: list[str] = []

        def warning(self, message: str) -> None:
            self.warnings.append(message)

    params = NodeParameters(model_path=str(tmp_path / "m.safetensors"), pipeline_config=str(config))
    logger = Logger()
    pipeline, state = load_node_pipeline(params, logger)
    assert pipeline.config.completion.extend_px == 48 and pipeline.config.cloud.stride == 2  # cloud.* parameters win
    assert (
        logger.warnings == [pipeline.settings_warning] and "completion.extend_px 48 (model: 16)" in logger.warnings[0]
    )
    status = diag.diagnostic_status("n", "cpu", _snapshot(), _snapshot(), 1.0, state, 0, {}, None)
    assert pipeline.settings_warning in {v.key: v.value for v in status.values}[diag.MODEL]

    config.write_text("cloud: {stride: 9}\n")
    logger = Logger()
    pipeline, state = load_node_pipeline(params, logger)
    assert pipeline.config.completion.extend_px == 16 and logger.warnings == [] and "differ" not in state.description


def test_diagnostic_status_levels_and_rates() -> None:
    ok = diag.ModelState("loaded m")
    before = _snapshot(sets=10, processed=5)
    status = diag.diagnostic_status(
        "n: pipeline", "cpu", _snapshot(30, 15, latency=(100.0, 300.0, 200.0)), before, 2.0, ok, 3, {"/image": 9}, None
    )
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == DiagnosticStatus.OK and status.message == "processing 5.0 Hz, latency 200.0 / 300.0 ms"
    assert (values[diag.SET_RATE], values[diag.PROCESSED_RATE], values[diag.DROPPED]) == ("10.00", "5.00", "3")
    assert values["received /image"] == "9"

    assert values[diag.LIFECYCLE] == "active" and values[diag.MODEL] == "loaded m"
    status = diag.diagnostic_status("n", "cpu", _snapshot(30, 15, skipped=2), before, 1.0, ok, 0, {}, "no input")
    assert status.level == DiagnosticStatus.WARN
    assert status.message == "no input; skipped 2 frame(s), last: frame 1.0 skipped: x"

    idle = diag.diagnostic_status("n", "cpu", _snapshot(12, 5, idle=2), before, 1.0, ok, 0, {}, None)
    assert (idle.level, idle.message) == (DiagnosticStatus.OK, "idle: no output has subscribers")


def test_a_node_that_is_not_active_names_its_state_and_why_configure_failed() -> None:
    status = diag.idle_status("n", "cpu", "inactive", diag.ModelState("loaded m"), "")
    values = {kv.key: kv.value for kv in status.values}
    assert (status.level, status.message) == (DiagnosticStatus.OK, "inactive: not processing")
    assert values == {diag.LIFECYCLE: "inactive", diag.MODEL: "loaded m"} and status.hardware_id == "cpu"
    status = diag.idle_status("n", "cpu", "unconfigured", diag.NOT_LOADED, "configure failed: no file m")
    assert (status.level, status.message) == (DiagnosticStatus.ERROR, "unconfigured: configure failed: no file m")
    assert {kv.key: kv.value for kv in status.values}[diag.MODEL] == diag.NOT_LOADED.description


def test_frame_statistics_start_a_new_latency_period_per_snapshot() -> None:
    stats = diag.FrameStatistics()
    stats.count_set()
    stats.count_processed(10.0, 50.0)
    stats.count_skipped("bad")
    first = stats.snapshot()
    assert (first.sets, first.processed, first.skipped, first.last_skip, first.latency_ms) == (1, 1, 1, "bad", (50.0,))
    assert stats.snapshot().latency_ms == () and stats.snapshot().processed == 1


def test_latest_slot_keeps_only_the_newest_item_and_counts_drops() -> None:
    slot: LatestSlot[int] = LatestSlot()
    for item in range(5):
        slot.put(item)
    assert slot.take() == 4 and slot.dropped == 4
    slot.put(5)
    assert slot.take() == 5 and slot.dropped == 4


def test_closing_the_slot_wakes_a_waiting_consumer() -> None:
    slot: LatestSlot[int] = LatestSlot()
    got: list[int | None] = []
    consumer = threading.Thread(target=lambda: got.append(slot.take()))
    consumer.start()
    consumer.join(0.2)
    assert consumer.is_alive()  # blocked: nothing to take
    slot.put(1)
    consumer.join(5)
    assert got == [1]
    consumer = threading.Thread(target=lambda: got.append(slot.take()))
    consumer.start()
    slot.close()
    consumer.join(5)
    assert not consumer.is_alive() and got == [1, None]
