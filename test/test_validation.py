"""Validation at the edge: each malformed field is rejected naming it, and what is accepted despite looking odd is
shown to be harmless (the decoded input, hence the output, equals the well-formed one's)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("sensor_msgs.msg")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from node_fixtures import camera_info_msg, cloud_msg, image_msg, intrinsics, lidar_points, textured_rgb  # noqa: E402
from sensor_msgs.msg import CompressedImage, PointField  # noqa: E402

from depth_panoptic_ros.ros.codecs.camera_info import camera_model_from_info  # noqa: E402
from depth_panoptic_ros.ros.codecs.cloud_codec import cloud_to_xyz  # noqa: E402
from depth_panoptic_ros.ros.codecs.image_codec import decode_compressed_image, decode_image  # noqa: E402
from depth_panoptic_ros.ros.codecs.validation import InputLimits, InvalidMessage  # noqa: E402

RGB = textured_rgb(24, 32)
POINTS = lidar_points(beams=4, azimuths=16)
KITTI_D = [-0.37, 0.2, 0.001, -0.0005, -0.07]


def good_image() -> Any:
    return image_msg(RGB, 10.5)


def good_info() -> Any:
    return camera_info_msg(intrinsics(24, 32), 24, 32, 10.5)


def good_cloud() -> Any:
    return cloud_msg(POINTS, 10.5)


def good_compressed(ext: str = ".png") -> CompressedImage:
    ok, encoded = cv2.imencode(ext, RGB[..., ::-1])
    assert ok
    msg = CompressedImage(format=ext[1:])
    msg.header.stamp.sec = 10
    msg.data = encoded.tobytes()
    return msg


def edit(make: Callable[[], Any], **changes: Any) -> Any:
    msg = make()
    for path, value in changes.items():
        target = msg
        *parents, leaf = path.split("__")
        for name in parents:
            target = getattr(target, name)
        setattr(target, leaf, value)
    return msg


def with_field(make: Callable[[], Any], index: int, **changes: Any) -> Any:
    msg = make()
    fields = list(msg.fields)
    fields[index] = PointField(
        **{**{k: getattr(fields[index], k) for k in ("name", "offset", "datatype", "count")}, **changes}
    )
    msg.fields = fields
    return msg


def with_k(index: int, value: float, d: list[float] | None = None, p_too: bool = True) -> Any:
    msg = good_info()
    k = list(msg.k)
    k[index] = value
    msg.k = k
    if p_too:  # keep P = [K | 0] so that the K check is the one that fires
        p = list(msg.p)
        p[index + index // 3] = value
        msg.p = p
    if d is not None:
        msg.d = d
    return msg


def with_p(index: int, value: float) -> Any:
    msg = good_info()
    p = list(msg.p)
    p[index] = value
    msg.p = p
    return msg


def _image_cases() -> list[tuple[str, Any, str]]:
    data_long = good_image()
    data_long.data = bytes(data_long.data) + b"\0"
    data_short = good_image()
    data_short.data = bytes(data_short.data)[:-1]
    return [
        ("nanosec 1e9", edit(good_image, header__stamp__nanosec=1_000_000_000), "header.stamp.nanosec"),
        ("nanosec 2^32-1", edit(good_image, header__stamp__nanosec=2**32 - 1), "header.stamp.nanosec"),
        ("sec -5", edit(good_image, header__stamp__sec=-5), "header.stamp.sec"),
        ("sec INT32_MIN", edit(good_image, header__stamp__sec=-(2**31)), "header.stamp.sec"),
        ("step short", edit(good_image, step=32 * 3 - 1), "step"),
        ("data long", data_long, "data"),
        ("data short", data_short, "data"),
        ("is_bigendian 2", edit(good_image, is_bigendian=2), "is_bigendian"),
        ("no pixels", edit(good_image, width=0, data=b""), "width, height"),
        ("encoding", edit(good_image, encoding="bayer_rggb8"), "encoding"),
        ("4:2:2 odd width", edit(good_image, encoding="yuyv", width=31, step=62, data=bytes(62 * 24)), "width"),
    ]


@pytest.mark.parametrize(("case", "msg", "field"), _image_cases(), ids=[c[0] for c in _image_cases()])
def test_malformed_images_are_rejected_naming_the_field(case: str, msg: Any, field: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        decode_image(msg)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_images_beyond_the_pixel_limit_are_rejected_before_decoding() -> None:
    limits = InputLimits(max_image_pixels=32 * 24 - 1)
    with pytest.raises(InvalidMessage, match="above limits.max_image_pixels 767"):
        decode_image(good_image(), limits)
    np.testing.assert_array_equal(decode_image(good_image(), InputLimits(max_image_pixels=32 * 24)), RGB)


def test_a_stamp_at_the_edges_of_the_valid_range_is_accepted() -> None:
    msg = edit(good_image, header__stamp__sec=2**31 - 1, header__stamp__nanosec=999_999_999)
    np.testing.assert_array_equal(decode_image(msg), RGB)


def _cut(msg: CompressedImage, n: int) -> CompressedImage:
    msg.data = bytes(msg.data)[:-n]
    return msg


def _png_claiming(width: int, height: int) -> CompressedImage:
    msg = good_compressed()
    data = bytearray(msg.data)
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    msg.data = bytes(data)
    return msg


@pytest.mark.parametrize(
    ("msg", "message"),
    [
        (_cut(good_compressed(".jpg"), 100), "JPEG stream is cut"),
        (_cut(good_compressed(".png"), 5), "PNG stream is cut"),
        (CompressedImage(format="jpeg", data=b"\xff\xd8\xff\xd9"), "without a frame header"),
        (CompressedImage(format="16UC1; compressedDepth", data=b"hello"), "compressedDepth"),
        (_png_claiming(100_000, 100_000), "100000x100000 image, outside"),
        (_png_claiming(33, 24), "a 33x24 header, OpenCV decodes"),
        (edit(good_compressed, header__stamp__nanosec=2**32 - 1), "header.stamp.nanosec"),
    ],
)
def test_malformed_compressed_images_are_rejected(msg: CompressedImage, message: str) -> None:
    with pytest.raises(InvalidMessage, match=message):
        decode_compressed_image(msg)


def test_compressed_images_decode_after_validation() -> None:
    np.testing.assert_array_equal(decode_compressed_image(good_compressed(".png")), RGB)
    assert decode_compressed_image(good_compressed(".jpg")).shape == RGB.shape


def _info_cases() -> list[tuple[str, Any, str]]:
    roi = good_info()
    roi.roi.x_offset, roi.roi.width = 10, 30
    return [
        ("K[2,2] = 0", with_k(8, 0.0), "k[8]"),
        ("K NaN", with_k(2, float("nan")), "k"),
        ("fx 1e-12", with_k(0, 1e-12), "k"),
        ("fx 1e9", with_k(0, 1e9), "k"),
        ("fy 1e-12", with_k(4, 1e-12), "k"),
        ("K[1,0] skew", with_k(3, 5.0), "k[3]"),
        ("cx far outside", with_k(2, 500.0), "k"),
        ("P all zero, D not", edit(good_info, p=[0.0] * 12, d=KITTI_D), "p"),
        ("P[2,2] = 2", with_p(10, 2.0), "p[10]"),
        ("P fx 3x K's", with_p(0, 300.0), "p"),
        ("P inf", with_p(3, float("inf")), "p"),
        ("unknown model", edit(good_info, distortion_model="fisheye_v9"), "distortion_model"),
        ("D length", edit(good_info, d=[0.1, 0.2, 0.3]), "d"),
        ("D NaN", edit(good_info, d=[float("nan")] * 5), "d"),
        ("D inf", edit(good_info, d=[float("inf")] + [0.0] * 4), "d"),
        ("roi outside", roi, "roi"),
        ("binning", edit(good_info, binning_x=64), "binning_x, binning_y"),
        ("zero size", edit(good_info, width=0), "width, height"),
        ("stamp", edit(good_info, header__stamp__sec=-1), "header.stamp.sec"),
    ]


@pytest.mark.parametrize(("case", "msg", "field"), _info_cases(), ids=[c[0] for c in _info_cases()])
def test_malformed_camera_info_is_rejected_naming_the_field(case: str, msg: Any, field: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        camera_model_from_info(msg)
    assert info.value.field == field


def test_zero_p_without_distortion_is_exactly_k_and_huge_finite_d_is_never_read() -> None:
    """P = 0 with D = 0 is the [K | 0] an ideal camera's driver would publish; D is kept for the round trip
    only (images are rectified), so a huge finite D changes nothing that the pipeline reads."""
    reference = camera_model_from_info(good_info())
    zero_p = camera_model_from_info(edit(good_info, p=[0.0] * 12, d=[]))
    huge_d = camera_model_from_info(edit(good_info, d=[1e30, -1e30, 1e30, 0.0, 0.0]))
    for model in (zero_p, huge_d):
        np.testing.assert_array_equal(model.P, reference.P)
        np.testing.assert_array_equal(model.intrinsics, reference.intrinsics)
        assert (model.width, model.height, model.baseline) == (reference.width, reference.height, reference.baseline)


def _cloud_cases() -> list[tuple[str, Any, str]]:
    f64_over_f32 = with_field(good_cloud, 0, datatype=PointField.FLOAT64)
    padded_wrong = good_cloud()
    padded_wrong.row_step += 4  # claims padded rows, data is not padded
    organized_wrong = good_cloud()
    organized_wrong.height, organized_wrong.width = 4, len(POINTS) // 4
    organized_wrong.row_step = 3 * 16  # not width * point_step
    return [
        ("count 0", with_field(good_cloud, 3, count=0), "fields[3] ('intensity').count"),
        ("x count 2", with_field(good_cloud, 0, count=2), "fields[1] ('y').offset"),
        ("duplicated x", with_field(good_cloud, 3, name="x"), "fields[3] ('x')"),
        ("overlapping offsets", with_field(good_cloud, 1, offset=2), "fields[1] ('y').offset"),
        ("float64 over float32 data", f64_over_f32, "fields[1] ('y').offset"),
        ("datatype 0", with_field(good_cloud, 2, datatype=0), "fields[2] ('z').datatype"),
        ("datatype 9", with_field(good_cloud, 3, datatype=9), "fields[3] ('intensity').datatype"),
        ("x is int", with_field(good_cloud, 0, datatype=PointField.INT32), "fields[0] ('x')"),
        ("field past point_step", with_field(good_cloud, 3, offset=14), "fields[3] ('intensity').offset"),
        ("row_step small", edit(good_cloud, row_step=5), "row_step"),
        ("row_step large, data not", padded_wrong, "data"),
        ("organized row_step", organized_wrong, "row_step"),
        ("point_step 0", edit(good_cloud, point_step=0), "point_step"),
        ("nanosec", edit(good_cloud, header__stamp__nanosec=2**32 - 1), "header.stamp.nanosec"),
        ("sec", edit(good_cloud, header__stamp__sec=-(2**31)), "header.stamp.sec"),
    ]


@pytest.mark.parametrize(("case", "msg", "field"), _cloud_cases(), ids=[c[0] for c in _cloud_cases()])
def test_malformed_clouds_are_rejected_naming_the_field(case: str, msg: Any, field: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        cloud_to_xyz(msg)
    assert info.value.field == field


def test_clouds_beyond_the_point_limit_are_rejected_before_unpacking() -> None:
    with pytest.raises(InvalidMessage, match=f"above limits.max_cloud_points {len(POINTS) - 1}"):
        cloud_to_xyz(good_cloud(), InputLimits(max_cloud_points=len(POINTS) - 1))


def test_padded_and_organized_clouds_read_the_same_points() -> None:
    expected = POINTS[:, :3]
    organized = good_cloud()
    organized.height, organized.width = 4, len(POINTS) // 4
    organized.row_step = organized.width * 16
    np.testing.assert_array_equal(cloud_to_xyz(organized), expected)
    padded = copy.deepcopy(organized)
    rows = np.frombuffer(bytes(organized.data), np.uint8).reshape(4, -1)
    padded.data = np.hstack([rows, np.full((4, 8), 0xAB, np.uint8)]).tobytes()
    padded.row_step += 8
    np.testing.assert_array_equal(cloud_to_xyz(padded), expected)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limits.max_cloud_points: expected >= 1, got 0"):
        InputLimits(max_cloud_points=0)


def test_every_real_kitti_camera_passes_validation(kitti_object) -> None:
    """Real calibrations (KITTI's P2 carries Tx and a small Tz) must not be rejected by the plausibility checks."""
    from depth_panoptic_ros.data.kitti import read_kitti_calib
    from depth_panoptic_ros.ros.codecs.camera_info import camera_info_from_model

    calibs = sorted((kitti_object / "calib").glob("*.txt"))
    assert calibs
    for calib in calibs:
        height, width = cv2.imread(str(kitti_object / "image_2" / f"{calib.stem}.png")).shape[:2]
        camera, _ = read_kitti_calib(calib, image_size=(width, height))
        info = camera_info_from_model(camera, good_info().header)
        np.testing.assert_array_equal(camera_model_from_info(info).P, camera.P)
