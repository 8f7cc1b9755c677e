"""Fuzzing the node's input path: malformed and re-encoded Image / CompressedImage / CameraInfo / PointCloud2 through
the node's own calls (serialized arrival, arrival checks, CameraInfo conversion, messages -> SensorFrame, classical
pipeline).

Each case starts from one well-formed set and applies layout changes that must not change the result (row and
point padding with garbage, other encodings and field orders, float64 or big-endian coordinates, organized
clouds, NaN / far / behind-the-camera points, P = 0 with D = 0, any finite D, any valid stamp), then at most one
corruption that the REPs forbid. The case must end in a typed rejection (a ValueError naming the field) exactly
when it was corrupted, and otherwise in a depth image equal to the well-formed set's, bit for bit.

The CI profile is seeded (derandomize) and sized to run in well under a minute; the long profile
(`pytest -m fuzz_long test/test_fuzz_inputs.py`) runs 10,000 cases and is not part of `make test`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("sensor_msgs.msg")
hypothesis = pytest.importorskip("hypothesis")

import cv2  # noqa: E402
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from node_fixtures import (  # noqa: E402
    camera_info_msg,
    cloud_msg,
    image_msg,
    intrinsics,
    lidar_points,
    textured_rgb,
)
from rclpy.serialization import serialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from depth_panoptic_ros.bench.geometry import T_CAM_LIDAR  # noqa: E402
from depth_panoptic_ros.pipeline import Pipeline, PipelineConfig  # noqa: E402
from depth_panoptic_ros.ros.codecs.camera_info import camera_model_from_info  # noqa: E402
from depth_panoptic_ros.ros.codecs.sensor_frame import messages_to_frame  # noqa: E402
from depth_panoptic_ros.ros.codecs.serialized_input import SerializedInput  # noqa: E402
from depth_panoptic_ros.ros.codecs.validation import DISTORTION_COEFFICIENTS, check_arrival  # noqa: E402

HEIGHT, WIDTH = 48, 64
RGB = textured_rgb(HEIGHT, WIDTH, seed=3)
K = intrinsics(HEIGHT, WIDTH)
POINTS = lidar_points(beams=16, azimuths=256)[:, :3].astype(np.float32)
PIPELINE = Pipeline(PipelineConfig())
# LiDAR-frame points the pipeline must ignore: NaN, inf, beyond lidar_max_range, behind the camera
HARMLESS_POINTS = np.array(
    [[np.nan, 1, 1], [np.inf, 0, 0], [1, -np.inf, 2], [500.0, 0.5, 0.2], [-5.0, 0.1, 0.0], [-40.0, 3.0, -1.0]],
    np.float32,
)
PIXEL_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8")
SUPPORTED_ENCODINGS = (*PIXEL_ENCODINGS, "mono8", "mono16", "yuv422", "uyvy", "yuv422_yuy2", "yuyv")
COORD_TYPES = {PointField.FLOAT32: "f4", PointField.FLOAT64: "f8"}
EXTRA_FIELDS = {
    "intensity": (PointField.FLOAT32, "f4"),
    "ring": (PointField.UINT16, "u2"),
    "t": (PointField.UINT32, "u4"),
}
EXTRA_FIELDS["reflectivity"] = (PointField.UINT8, "u1")
FIELD_SIZES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 8: 8}


@dataclass
class Case:
    """One input set and what was done to it; ``corrupted`` names the corruption, if any."""

    image: Image | CompressedImage
    info: CameraInfo
    cloud: PointCloud2
    corrupted: str | None = None

    def __repr__(self) -> str:  # the messages' bytes would make hypothesis's reports megabytes long
        image = f"{type(self.image).__name__}({getattr(self.image, 'encoding', None) or self.image.format})"
        cloud = f"PointCloud2({self.cloud.height}x{self.cloud.width}, {[f.name for f in self.cloud.fields]})"
        return f"Case({image}, CameraInfo({self.info.distortion_model}), {cloud}, corrupted={self.corrupted!r})"


def node_path(case: Case, serialized: bool = True) -> np.ndarray:
    """What the node does with one set: image and cloud serialized as they arrive, arrival checks on what is read
    from their first bytes, CameraInfo -> model, the set deserialized, messages -> SensorFrame, pipeline.
    ``serialized=False`` passes the messages as they are (the reference)."""
    image, cloud = case.image, case.cloud
    if serialized:
        arrived = [SerializedInput(type(msg), serialize_message(msg)) for msg in (image, cloud)]
        for msg in arrived:
            check_arrival(msg.head)
        image, cloud = (msg.decode() for msg in arrived)
    camera = camera_model_from_info(case.info)
    frame = messages_to_frame([("image", image)], [camera], ("lidar", cloud, lambda *_: T_CAM_LIDAR))
    return PIPELINE.run(frame, {"depth"}).depth


# -- well-formed encodings of the reference set -------------------------------------------------------------------
def _stamp(draw: st.DrawFn) -> Header:
    header = Header(frame_id=draw(st.text(max_size=12)))
    header.stamp.sec = draw(st.integers(0, 2**31 - 1))
    header.stamp.nanosec = draw(st.integers(0, 10**9 - 1))
    return header


@st.composite
def images(draw: st.DrawFn) -> Image | CompressedImage:
    if draw(st.integers(0, 4)) == 0:  # lossless compressed
        msg = CompressedImage(header=_stamp(draw), format=draw(st.sampled_from(["png", "rgb8; png compressed bgr8"])))
        msg.data = cv2.imencode(".png", RGB[..., ::-1])[1].tobytes()
        return msg
    encoding = draw(st.sampled_from(PIXEL_ENCODINGS))
    pixels = RGB[..., ::-1] if encoding.startswith("bgr") else RGB
    if encoding.endswith("a8"):
        pixels = np.dstack([pixels, np.full((HEIGHT, WIDTH), draw(st.integers(0, 255)), np.uint8)])
    pad = draw(st.integers(0, 24))
    garbage = np.frombuffer(draw(st.binary(min_size=pad * HEIGHT, max_size=pad * HEIGHT)), np.uint8)
    rows = np.hstack([pixels.reshape(HEIGHT, -1), garbage.reshape(HEIGHT, pad)])
    msg = Image(header=_stamp(draw), height=HEIGHT, width=WIDTH, encoding=encoding, step=rows.shape[1])
    msg.is_bigendian = draw(st.integers(0, 1))  # no effect on 8-bit channels
    msg.data = rows.tobytes()
    return msg


@st.composite
def camera_infos(draw: st.DrawFn) -> CameraInfo:
    msg = camera_info_msg(K, HEIGHT, WIDTH, 0.0)
    msg.header = _stamp(draw)
    msg.distortion_model = draw(st.sampled_from(sorted(DISTORTION_COEFFICIENTS)))
    n = DISTORTION_COEFFICIENTS[msg.distortion_model]
    zero_p = draw(st.booleans())
    if zero_p:  # an ideal camera's P may be left 0: it is [K | 0]
        msg.p = [0.0] * 12
        msg.d = draw(st.sampled_from([[], [0.0] * n]))
    else:  # D describes the raw camera; the pipeline reads only the rectified P
        finite = st.floats(-1e6, 1e6, allow_nan=False)
        msg.d = draw(st.one_of(st.just([]), st.lists(finite, min_size=n, max_size=n)))
    msg.r = draw(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=9, max_size=9))
    msg.binning_x, msg.binning_y = draw(st.integers(0, 1)), draw(st.integers(0, 1))
    return msg


@st.composite
def clouds(draw: st.DrawFn) -> PointCloud2:
    n_extra = 4 * draw(st.integers(0, 4))
    extra = HARMLESS_POINTS[
        draw(st.lists(st.integers(0, len(HARMLESS_POINTS) - 1), min_size=n_extra, max_size=n_extra))
    ]
    xyz = np.concatenate([POINTS, extra.reshape(-1, 3)])
    if draw(st.booleans()):
        xyz = xyz[np.random.default_rng(draw(st.integers(0, 2**32 - 1))).permutation(len(xyz))]
    names = ["x", "y", "z", *draw(st.lists(st.sampled_from(sorted(EXTRA_FIELDS)), unique=True, max_size=3))]
    order = draw(st.permutations(names))
    types = {n: draw(st.sampled_from(sorted(COORD_TYPES))) for n in "xyz"}
    types.update({n: EXTRA_FIELDS[n][0] for n in names[3:]})
    offsets, end = {}, 0
    for name in order:
        offsets[name] = end + draw(st.integers(0, 3))
        end = offsets[name] + FIELD_SIZES[types[name]]
    point_step = end + draw(st.integers(0, 8))
    big = draw(st.booleans())
    order_char = ">" if big else "<"
    formats = {n: order_char + (COORD_TYPES[types[n]] if n in "xyz" else EXTRA_FIELDS[n][1]) for n in names}
    layout = np.dtype(
        {
            "names": names,
            "formats": [formats[n] for n in names],
            "offsets": [offsets[n] for n in names],
            "itemsize": point_step,
        }
    )
    filler = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    height = draw(st.sampled_from([1, 2, 4]))
    width = len(xyz) // height
    raw = filler.integers(0, 256, len(xyz) * point_step, dtype=np.uint8)  # garbage in padding and extra fields
    points = raw.view(layout)
    for i, axis in enumerate("xyz"):
        points[axis] = xyz[:, i]
    row_pad = draw(st.integers(0, 12))
    rows = np.hstack([raw.reshape(height, -1), filler.integers(0, 256, (height, row_pad), dtype=np.uint8)])
    msg = PointCloud2(
        header=_stamp(draw),
        height=height,
        width=width,
        fields=[PointField(name=n, offset=offsets[n], datatype=types[n], count=1) for n in order],
        is_bigendian=big,
        point_step=point_step,
        row_step=rows.shape[1],
        is_dense=False,
    )
    msg.data = rows.tobytes()
    return msg


# -- corruptions the REPs forbid ------------------------------------------------------------------------------------
def _bad_stamp(draw: st.DrawFn, msg: Any) -> str:
    if draw(st.booleans()):
        msg.header.stamp.nanosec = draw(st.integers(10**9, 2**32 - 1))
        return "stamp.nanosec >= 1e9"
    msg.header.stamp.sec = draw(st.integers(-(2**31), -1))
    return "stamp.sec < 0"


def _bad_image(draw: st.DrawFn, case: Case) -> str:
    msg = case.image
    if isinstance(msg, CompressedImage):
        data = bytearray(msg.data)
        kind = draw(st.sampled_from(["cut", "flip", "stamp", "depth"]))
        if kind == "cut":
            msg.data = bytes(data[: draw(st.integers(0, len(data) - 1))])
        elif kind == "flip":  # a byte of the compressed pixel data: every PNG chunk carries a CRC
            i = draw(st.integers(41, len(data) - 13))
            data[i] ^= draw(st.integers(1, 255))
            msg.data = bytes(data)
        elif kind == "depth":
            msg.format = "16UC1; compressedDepth png"
        else:
            return _bad_stamp(draw, msg)
        return f"compressed {kind}"
    row = WIDTH * (4 if msg.encoding.endswith("a8") else 3)
    kind = draw(st.sampled_from(["step", "data", "encoding", "endian", "size", "stamp"]))
    if kind == "step":
        msg.step = draw(st.integers(0, row - 1))
    elif kind == "data":
        size = len(msg.data) + draw(st.integers(-len(msg.data), 64).filter(lambda d: d != 0))
        msg.data = bytes(size)
    elif kind == "encoding":
        msg.encoding = draw(st.text(max_size=12).filter(lambda e: e not in SUPPORTED_ENCODINGS))
    elif kind == "endian":
        msg.is_bigendian = draw(st.integers(2, 255))
    elif kind == "size":  # the image no longer matches its CameraInfo (or its data)
        msg.width = WIDTH + draw(st.integers(-WIDTH, 8).filter(lambda d: d != 0))
    else:
        return _bad_stamp(draw, msg)
    return f"image {kind}"


def _bad_info(draw: st.DrawFn, case: Case) -> str:
    msg = case.info
    k, p = list(msg.k), list(msg.p)
    kind = draw(st.sampled_from(["k22", "nan", "focal", "ratio", "zero_p", "model", "d_len", "d_nan", "roi", "stamp"]))
    if kind == "k22":
        k[8] = draw(st.floats(-10, 10).filter(lambda v: abs(v - 1) > 1e-3))
    elif kind == "nan":
        k[draw(st.sampled_from([0, 2, 4, 5]))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif kind == "focal":  # fx 100 px -> <= 2 px (fov > 172 deg) or >= 1e4 px (< 0.4 deg), in K and P alike
        scale = 10 ** draw(st.one_of(st.floats(-15, -1.7), st.floats(2, 15)))
        k[0] = k[0] * scale
        p[0] = p[0] * scale if any(p) else 0.0
    elif kind == "ratio":
        p = list(K.ravel()[:3]) + [0.0] + list(K.ravel()[3:6]) + [0.0, 0.0, 0.0, 1.0, 0.0]
        p[0] = K[0, 0] * draw(st.one_of(st.floats(0.01, 0.45), st.floats(2.2, 40)))
    elif kind == "zero_p":
        p = [0.0] * 12
        msg.distortion_model = "plumb_bob"
        msg.d = [draw(st.floats(0.01, 1.0))] + [0.0] * 4
    elif kind == "model":
        msg.distortion_model = draw(st.text(max_size=16).filter(lambda m: m not in DISTORTION_COEFFICIENTS))
    elif kind == "d_len":
        n = DISTORTION_COEFFICIENTS[msg.distortion_model]
        msg.d = [0.0] * draw(st.integers(1, 14).filter(lambda m: m != n))
    elif kind == "d_nan":
        n = DISTORTION_COEFFICIENTS[msg.distortion_model]
        msg.d = [np.nan] * n
    elif kind == "roi":
        msg.roi.x_offset, msg.roi.width = draw(st.integers(1, WIDTH)), WIDTH
    else:
        return _bad_stamp(draw, msg)
    msg.k, msg.p = k, p
    return f"camera_info {kind}"


def _bad_cloud(draw: st.DrawFn, case: Case) -> str:
    msg = case.cloud
    fields = list(msg.fields)
    i = draw(st.integers(0, len(fields) - 1))
    f = fields[i]
    kind = draw(
        st.sampled_from(["count", "dup", "overlap", "datatype", "int_xyz", "row_step", "data", "step", "stamp"])
    )
    if kind == "count":
        fields[i] = PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=0)
    elif kind == "dup":
        j = draw(st.integers(0, len(fields) - 1).filter(lambda j: j != i))
        fields[i] = PointField(name=fields[j].name, offset=f.offset, datatype=f.datatype, count=1)
    elif kind == "overlap":  # another field starts inside this one
        j = draw(st.integers(0, len(fields) - 1).filter(lambda j: j != i))
        g = fields[j]
        start = f.offset + draw(st.integers(0, FIELD_SIZES[f.datatype] - 1))
        fields[j] = PointField(name=g.name, offset=start, datatype=g.datatype, count=1)
    elif kind == "datatype":
        bad = draw(st.one_of(st.just(0), st.integers(9, 255)))
        fields[i] = PointField(name=f.name, offset=f.offset, datatype=bad, count=1)
    elif kind == "int_xyz":
        axis = draw(st.sampled_from("xyz"))
        j = next(j for j, g in enumerate(fields) if g.name == axis)
        g = fields[j]
        fields[j] = PointField(name=g.name, offset=g.offset, datatype=draw(st.integers(1, 6)), count=1)
    elif kind == "row_step":
        msg.row_step = draw(st.integers(0, msg.width * msg.point_step - 1))
    elif kind == "data":
        size = len(msg.data) + draw(st.integers(-len(msg.data), 64).filter(lambda d: d != 0))
        msg.data = bytes(size)
    elif kind == "step":
        msg.point_step = 0
    else:
        return _bad_stamp(draw, msg)
    msg.fields = fields
    return f"cloud {kind}"


CORRUPTIONS: dict[str, Callable[[st.DrawFn, Case], str]] = {
    "image": _bad_image,
    "camera_info": _bad_info,
    "cloud": _bad_cloud,
}


@st.composite
def cases(draw: st.DrawFn) -> Case:
    case = Case(draw(images()), draw(camera_infos()), draw(clouds()))
    target = draw(st.sampled_from([None, *CORRUPTIONS]))
    if target is not None:
        case.corrupted = CORRUPTIONS[target](draw, case)
    return case


def check(case: Case) -> None:
    try:
        depth = node_path(case)
    except ValueError as exc:
        event(f"rejected: {case.corrupted}")
        assert case.corrupted, f"a well-formed set was rejected: {exc}"
        return
    event("accepted, depth equal")
    assert case.corrupted is None, f"corruption {case.corrupted!r} was accepted"
    np.testing.assert_array_equal(depth, reference_depth())


@functools.cache
def reference_depth() -> np.ndarray:
    """The depth of the set as a driver would plainly publish it (rgb8, [K | 0], x y z intensity float32)."""
    cloud = cloud_msg(np.c_[POINTS, np.zeros(len(POINTS), np.float32)], 1.0)
    depth = node_path(Case(image_msg(RGB, 1.0), camera_info_msg(K, HEIGHT, WIDTH, 1.0), cloud), serialized=False)
    assert (depth > 0).mean() > 0.5  # a scene, not an empty image that anything would equal
    return depth


# Seeded (derandomize) and without an example database: every run checks the same cases.
_FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(_FUZZ, max_examples=300)
@given(cases())
def test_malformed_inputs_are_rejected_and_reencoded_ones_give_the_same_depth(case: Case) -> None:
    check(case)


@pytest.mark.fuzz_long
@settings(_FUZZ, max_examples=10_000)
@given(cases())
def test_fuzz_long(case: Case) -> None:
    check(case)
