"""Message <-> numpy conversions of the ROS adapter, on hand-built messages (no DDS traffic)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("sensor_msgs.msg")
pytest.importorskip("depth_panoptic_ros.msg")

import cv2  # noqa: E402
from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import Quaternion, Transform, TransformStamped, Vector3  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from depth_panoptic_ros.classes import ClassTable  # noqa: E402
from depth_panoptic_ros.geometry.backproject import PanopticCloud  # noqa: E402
from depth_panoptic_ros.geometry.pointcloud2 import pack_cloud  # noqa: E402
from depth_panoptic_ros.products.instance_depth import InstanceDepthTable  # noqa: E402
from depth_panoptic_ros.ros.codecs.camera_info import (  # noqa: E402
    calibration_key,
    camera_info_from_model,
    camera_model_from_info,
)
from depth_panoptic_ros.ros.codecs.cloud_codec import cloud_to_msg, cloud_to_xyz  # noqa: E402
from depth_panoptic_ros.ros.codecs.image_codec import (  # noqa: E402
    decode_compressed_image,
    decode_depth,
    decode_image,
    depth_to_msg,
    image_to_msg,
)
from depth_panoptic_ros.ros.codecs.panoptic_msgs import (  # noqa: E402
    class_table_to_msg,
    instances_to_msg,
    markers_from_instances,
)
from depth_panoptic_ros.ros.runtime.transforms import (  # noqa: E402
    TransformSource,
    extrinsic_from_parameter,
    quaternion_to_rotation,
    transform_to_matrix,
)

pytestmark = pytest.mark.ros

HEADER = Header(stamp=Time(sec=1700000000, nanosec=123456789), frame_id="cam_optical_frame")
RNG = np.random.default_rng(7)
H, W = 5, 6


def image_msg(rows: np.ndarray, encoding: str, width: int, pad: int = 0, big_endian: bool = False) -> Image:
    """An Image whose rows are ``rows`` (H, row bytes) followed by ``pad`` garbage bytes each."""
    rows = rows.reshape(rows.shape[0], -1).view(np.uint8)
    padded = np.hstack([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)])
    return Image(
        header=HEADER,
        height=rows.shape[0],
        width=width,
        encoding=encoding,
        is_bigendian=big_endian,
        step=padded.shape[1],
        data=padded.tobytes(),
    )


@pytest.fixture
def rgb() -> np.ndarray:
    return RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)


# --- color images ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pad", [0, 7])
def test_rgb8_and_bgr8_decode_to_the_same_rgb_with_row_padding(rgb: np.ndarray, pad: int) -> None:
    np.testing.assert_array_equal(decode_image(image_msg(rgb, "rgb8", W, pad)), rgb)
    np.testing.assert_array_equal(decode_image(image_msg(rgb[..., ::-1].copy(), "bgr8", W, pad)), rgb)


def test_rgb8_decodes_to_a_read_only_view_of_the_message(rgb: np.ndarray) -> None:
    msg = image_msg(rgb, "rgb8", W)
    out = decode_image(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))
    assert not out.flags.writeable


def test_alpha_encodings_drop_alpha(rgb: np.ndarray) -> None:
    alpha = RNG.integers(0, 256, (H, W, 1), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(image_msg(np.concatenate([rgb, alpha], 2), "rgba8", W, 3)), rgb)
    bgra = np.concatenate([rgb[..., ::-1], alpha], 2)
    np.testing.assert_array_equal(decode_image(image_msg(bgra, "bgra8", W, 3)), rgb)


def test_mono8_is_replicated_to_three_channels() -> None:
    gray = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(image_msg(gray, "mono8", W, 2)), np.stack([gray] * 3, axis=2))


@pytest.mark.parametrize("big_endian", [False, True])
def test_mono16_keeps_the_high_byte_in_either_byte_order(big_endian: bool) -> None:
    gray = RNG.integers(0, 65536, (H, W), dtype=np.uint16)
    rows = gray.astype(">u2" if big_endian else "<u2")
    expected = np.stack([gray // 256] * 3, axis=2).astype(np.uint8)
    np.testing.assert_array_equal(decode_image(image_msg(rows, "mono16", W, 4, big_endian)), expected)


def yuv422(y: np.ndarray, u: np.ndarray, v: np.ndarray, order: str) -> np.ndarray:
    """Packed 4:2:2 rows, two bytes per pixel: YUYV = Y0 U Y1 V, UYVY = U Y0 V Y1 (u, v per pixel pair)."""
    out = np.empty((y.shape[0], y.shape[1] // 2, 4), np.uint8)
    planes = {"Y0": y[:, 0::2], "Y1": y[:, 1::2], "U": u, "V": v}
    for i, name in enumerate(["Y0", "U", "Y1", "V"] if order == "yuyv" else ["U", "Y0", "V", "Y1"]):
        out[..., i] = planes[name]
    return out.reshape(y.shape[0], -1)


def bt601_limited_range(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """RGB of studio-swing BT.601 YCbCr (the conversion OpenCV's YUV2RGB_* codes implement)."""
    y, u, v = y - 16.0, np.repeat(u, 2, axis=1) - 128.0, np.repeat(v, 2, axis=1) - 128.0
    rgb = np.stack([1.164 * y + 1.596 * v, 1.164 * y - 0.392 * u - 0.813 * v, 1.164 * y + 2.017 * u], axis=2)
    return np.clip(np.rint(rgb), 0, 255)


def test_yuv422_variants_decode_like_bt601_and_like_opencv() -> None:
    y = RNG.integers(16, 236, (H, W), dtype=np.uint8)
    u = RNG.integers(16, 241, (H, W // 2), dtype=np.uint8)
    v = RNG.integers(16, 241, (H, W // 2), dtype=np.uint8)
    yuyv, uyvy = yuv422(y, u, v, "yuyv"), yuv422(y, u, v, "uyvy")
    decoded = {
        encoding: decode_image(image_msg(rows, encoding, W, pad=6))
        for encoding, rows in [("yuyv", yuyv), ("yuv422_yuy2", yuyv), ("uyvy", uyvy), ("yuv422", uyvy)]
    }
    opencv = cv2.cvtColor(yuyv.reshape(H, W, 2), cv2.COLOR_YUV2RGB_YUYV)
    for encoding, out in decoded.items():
        np.testing.assert_array_equal(out, opencv, err_msg=encoding)
    assert np.abs(opencv.astype(float) - bt601_limited_range(y, u, v)).max() <= 2


@pytest.mark.parametrize(
    ("msg", "message"),
    [
        (Image(encoding="bayer_rggb8", width=2, height=2, step=2, data=bytes(4)), "unsupported image encoding"),
        (Image(encoding="rgb8", width=4, height=2, step=11, data=bytes(22)), "step 11 is smaller than one row"),
        (Image(encoding="rgb8", width=4, height=2, step=12, data=bytes(23)), "holds 23 bytes, expected"),
        (Image(encoding="yuyv", width=3, height=2, step=6, data=bytes(12)), "even width, got 3"),
        (Image(encoding="mono8", width=0, height=2, step=0, data=b""), "has no pixels"),
    ],
)
def test_malformed_images_raise_a_clear_error(msg: Image, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        decode_image(msg)
    assert repr(msg.encoding) in str(info.value)


def test_unsupported_encoding_error_lists_the_supported_ones() -> None:
    with pytest.raises(ValueError, match="supported: rgb8, bgr8, .*yuyv"):
        decode_image(Image(encoding="nv12", width=2, height=2, step=2, data=bytes(4)))


# --- compressed images -----------------------------------------------------------------------------------------


def compressed(rgb: np.ndarray, extension: str, fmt: str) -> CompressedImage:
    ok, encoded = cv2.imencode(extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return CompressedImage(header=HEADER, format=fmt, data=encoded.tobytes())


def test_png_compressed_image_decodes_exactly_and_jpeg_closely() -> None:
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :16] = (200, 30, 30)
    rgb[:, 16:32] = (30, 200, 30)
    rgb[:, 32:] = (30, 30, 200)
    np.testing.assert_array_equal(decode_compressed_image(compressed(rgb, ".png", "png")), rgb)
    jpeg = decode_compressed_image(compressed(rgb, ".jpg", "rgb8; jpeg compressed bgr8"))
    assert np.abs(jpeg.astype(int) - rgb).mean() < 4


def test_undecodable_compressed_images_raise() -> None:
    with pytest.raises(ValueError, match="5 bytes that are neither a PNG nor a JPEG"):
        decode_compressed_image(CompressedImage(format="jpeg", data=b"hello"))
    with pytest.raises(ValueError, match="compressedDepth"):
        decode_compressed_image(CompressedImage(format="16UC1; compressedDepth", data=b"hello"))


# --- published images and depth (REP 118) ---------------------------------------------------------------------


def test_depth_32fc1_carries_nan_for_invalid_and_round_trips() -> None:
    depth = RNG.uniform(1, 80, (H, W)).astype(np.float32)
    depth[1, 2] = depth[4, 0] = 0
    msg = depth_to_msg(depth, HEADER)
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("32FC1", W, H, W * 4)
    assert msg.header.stamp == HEADER.stamp and msg.header.frame_id == "cam_optical_frame"
    raw = np.frombuffer(msg.data, "<f4" if not msg.is_bigendian else ">f4").reshape(H, W)
    assert np.array_equal(np.isnan(raw), depth == 0)
    np.testing.assert_array_equal(decode_depth(msg), depth)


def test_depth_16uc1_is_millimeters_with_zero_invalid() -> None:
    depth = np.array([[1.2344, 0.0, 70.0]], np.float32)  # 70 m does not fit in uint16 millimeters
    msg = depth_to_msg(depth, HEADER, "16UC1")
    np.testing.assert_array_equal(np.frombuffer(msg.data, np.uint16), [1234, 0, 0])
    np.testing.assert_allclose(decode_depth(msg), [[1.234, 0.0, 0.0]], rtol=1e-6)


def test_big_endian_32fc1_depth_is_decoded() -> None:
    depth = np.array([[2.5, np.nan], [np.inf, -1.0]], dtype=">f4")
    out = decode_depth(image_msg(depth, "32FC1", 2, pad=3, big_endian=True))
    np.testing.assert_array_equal(out, [[2.5, 0.0], [0.0, 0.0]])
    assert out.dtype == np.float32


def test_panoptic_ids_are_published_as_32sc1() -> None:
    ids = np.array([[26001, 26002, 0], [7000, 7000, 24003]], np.int32)
    msg = image_to_msg(ids, "32SC1", HEADER)
    assert (msg.encoding, msg.step, msg.header) == ("32SC1", 12, HEADER)
    np.testing.assert_array_equal(np.frombuffer(msg.data, np.int32).reshape(2, 3), ids)
    color = RNG.integers(0, 256, (2, 3, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(image_to_msg(color, "rgb8", HEADER)), color)


@pytest.mark.parametrize(
    ("values", "encoding", "message"),
    [
        (np.zeros((2, 3), np.int64), "32SC1", "expected dtype int32, got int64"),
        (np.zeros((2, 3, 1), np.int32), "32SC1", r"expected shape \(H, W\), got \(2, 3, 1\)"),
        (np.zeros((2, 3), np.uint8), "rgb8", r"expected shape \(H, W, 3\)"),
        (np.zeros((2, 3), np.uint8), "bgr8", "cannot publish encoding 'bgr8'"),
    ],
)
def test_bad_arrays_to_publish_raise(values: np.ndarray, encoding: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        image_to_msg(values, encoding, HEADER)


# --- CameraInfo -----------------------------------------------------------------------------------------------


def camera_info(**changes: object) -> CameraInfo:
    info = CameraInfo(
        header=HEADER,
        width=1242,
        height=375,
        distortion_model="plumb_bob",
        d=[-0.37, 0.2, 0.001, -0.0005, -0.07],
        k=[721.5, 0.0, 609.6, 0.0, 721.5, 172.9, 0.0, 0.0, 1.0],
        r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p=[721.5, 0.0, 609.6, -387.6, 0.0, 721.5, 172.9, 0.0, 0.0, 0.0, 1.0, 0.0],
    )
    for key, value in changes.items():
        setattr(info, key, value)
    return info


def test_camera_info_round_trips_through_camera_model() -> None:
    info = camera_info()
    model = camera_model_from_info(info)
    assert (model.width, model.height, model.fx, model.cx, model.cy) == (1242, 375, 721.5, 609.6, 172.9)
    assert model.baseline == pytest.approx(387.6 / 721.5)
    back = camera_info_from_model(model, HEADER)
    assert back.header == HEADER
    assert (back.width, back.height, back.distortion_model) == (1242, 375, "plumb_bob")
    for name in ("k", "p", "d", "r"):
        np.testing.assert_array_equal(getattr(back, name), getattr(info, name), err_msg=name)


def test_calibration_key_is_equal_exactly_when_what_the_camera_model_reads_is_equal() -> None:
    """The node skips rebuilding the camera for a repeated CameraInfo by this key: every field the model reads
    must change it, and nothing else (header, R) may."""
    base = calibration_key(camera_info())
    assert calibration_key(camera_info(header=Header(frame_id="other"), r=np.zeros(9))) == base
    changed = {
        "width": 1240,
        "height": 376,
        "binning_x": 2,
        "binning_y": 2,
        "distortion_model": "equidistant",
        "d": [-0.37, 0.2, 0.001, -0.0005],
        "k": [721.5, 0.0, 609.6, 0.0, 721.5, 172.8, 0.0, 0.0, 1.0],
        "p": [721.5, 0.0, 609.6, -387.5, 0.0, 721.5, 172.9, 0.0, 0.0, 0.0, 1.0, 0.0],
    }
    keys = {name: calibration_key(camera_info(**{name: value})) for name, value in changed.items()}
    for field in ("x_offset", "y_offset", "width", "height"):
        info = camera_info()
        setattr(info.roi, field, 8)
        keys[f"roi.{field}"] = calibration_key(info)
    assert base not in keys.values() and len(set(keys.values())) == len(keys)


def test_camera_info_without_projection_uses_k() -> None:
    model = camera_model_from_info(camera_info(p=np.zeros(12), d=np.zeros(5)))
    np.testing.assert_array_equal(model.P, [[721.5, 0, 609.6, 0], [0, 721.5, 172.9, 0], [0, 0, 1, 0]])


def test_binning_and_roi_map_the_calibration_to_the_published_pixels() -> None:
    binned = camera_model_from_info(camera_info(binning_x=2, binning_y=2))
    assert (binned.width, binned.height, binned.fx, binned.fy) == (621, 187, 360.75, 360.75)
    assert (binned.cx, binned.cy) == (304.8, 86.45)
    roi = camera_info()
    roi.roi.x_offset, roi.roi.y_offset, roi.roi.width, roi.roi.height = 10, 20, 100, 50
    cropped = camera_model_from_info(roi)
    assert (cropped.width, cropped.height, cropped.fx) == (100, 50, 721.5)
    assert (cropped.cx, cropped.cy) == pytest.approx((599.6, 152.9))


def test_uncalibrated_camera_info_raises() -> None:
    with pytest.raises(ValueError, match=r"k\[8\]: expected 1, got 0"):
        camera_model_from_info(camera_info(k=np.zeros(9), p=np.zeros(12)))


# --- PointCloud2 ----------------------------------------------------------------------------------------------


def panoptic_cloud(shape: tuple[int, ...]) -> PanopticCloud:
    xyz = RNG.uniform(-20, 20, (*shape, 3)).astype(np.float32)
    return PanopticCloud(
        xyz=xyz,
        rgb=RNG.integers(0, 256, (*shape, 3), dtype=np.uint8),
        label=RNG.integers(0, 34, shape, dtype=np.uint32),
        instance=RNG.integers(0, 34000, shape, dtype=np.uint32),
    )


def test_packed_cloud_message_has_pcl_fields_and_round_trips() -> None:
    cloud = panoptic_cloud((7,))
    msg = cloud_to_msg(pack_cloud(cloud), HEADER)
    assert msg.header == HEADER
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1),
        ("y", 4, PointField.FLOAT32, 1),
        ("z", 8, PointField.FLOAT32, 1),
        ("rgb", 12, PointField.FLOAT32, 1),
        ("label", 16, PointField.UINT32, 1),
        ("instance", 20, PointField.UINT32, 1),
    ]
    assert (msg.height, msg.width, msg.point_step, msg.row_step, msg.is_dense) == (1, 7, 24, 168, True)
    points = np.frombuffer(msg.data, np.uint8).reshape(7, 24)
    r, g, b = (cloud.rgb[:, i].astype(np.uint32) for i in range(3))
    np.testing.assert_array_equal(points[:, 12:16].copy().view("<u4").ravel(), r * 65536 + g * 256 + b)
    np.testing.assert_array_equal(points[:, 16:20].copy().view("<u4").ravel(), cloud.label)
    np.testing.assert_array_equal(points[:, 20:24].copy().view("<u4").ravel(), cloud.instance)
    np.testing.assert_array_equal(cloud_to_xyz(msg), cloud.xyz)


def test_organized_cloud_keeps_rows_and_nan() -> None:
    cloud = panoptic_cloud((3, 4))
    cloud.xyz[1, 2] = np.nan
    msg = cloud_to_msg(pack_cloud(cloud), HEADER)
    assert (msg.height, msg.width, msg.is_dense) == (3, 4, False)
    np.testing.assert_array_equal(cloud_to_xyz(msg), cloud.xyz.reshape(-1, 3))


def driver_cloud(layout: np.dtype, xyz: np.ndarray, row_padding: int = 0, **fields: tuple[int, int]) -> PointCloud2:
    """A one-row cloud in ``layout`` (a structured dtype), with PointFields (name -> (offset, datatype))."""
    points = np.zeros(len(xyz), layout)
    points["x"], points["y"], points["z"] = xyz.T
    data = np.concatenate([points.view(np.uint8), np.full(row_padding, 0xCD, np.uint8)])
    return PointCloud2(
        height=1,
        width=len(xyz),
        fields=[PointField(name=n, offset=o, datatype=t, count=1) for n, (o, t) in fields.items()],
        is_bigendian=layout["x"].byteorder == ">",
        point_step=layout.itemsize,
        row_step=layout.itemsize * len(xyz) + row_padding,
        data=data.tobytes(),
    )


XYZ = np.array([[1.5, -2.25, 3.0], [10.0, 0.5, -0.125], [-7.0, 8.0, 9.5]])
OUSTER = np.dtype(
    {
        "names": ["x", "y", "z", "intensity", "t", "reflectivity", "ring", "range"],
        "formats": ["<f4", "<f4", "<f4", "<f4", "<u4", "<u2", "<u2", "<u4"],
        "offsets": [0, 4, 8, 16, 20, 24, 26, 32],
        "itemsize": 48,
    }
)


def test_ouster_like_layout_with_padding_is_read_by_offsets() -> None:
    msg = driver_cloud(
        OUSTER, XYZ, x=(0, 7), y=(4, 7), z=(8, 7), intensity=(16, 7), t=(20, 6), ring=(26, 4), range=(32, 6)
    )
    np.testing.assert_array_equal(cloud_to_xyz(msg), XYZ.astype(np.float32))


def test_float64_and_big_endian_coordinates_and_padded_rows() -> None:
    f64 = np.dtype({"names": ["x", "y", "z", "i"], "formats": ["<f8", "<f8", "<f8", "<f4"], "offsets": [0, 8, 16, 24]})
    msg = driver_cloud(f64, XYZ, x=(0, 8), y=(8, 8), z=(16, 8), intensity=(24, 7))
    np.testing.assert_array_equal(cloud_to_xyz(msg), XYZ.astype(np.float32))
    big = np.dtype({"names": list("xyz"), "formats": [">f4"] * 3, "offsets": [8, 4, 0], "itemsize": 16})
    msg = driver_cloud(big, XYZ, row_padding=5, x=(8, 7), y=(4, 7), z=(0, 7))
    np.testing.assert_array_equal(cloud_to_xyz(msg), XYZ.astype(np.float32))


def test_malformed_clouds_raise_a_clear_error() -> None:
    layout = np.dtype({"names": list("xyz"), "formats": ["<f4"] * 3, "offsets": [0, 4, 8], "itemsize": 16})
    no_z = driver_cloud(layout, XYZ, x=(0, 7), y=(4, 7))
    with pytest.raises(ValueError, match=r"lacks field 'z'"):
        cloud_to_xyz(no_z)
    short = driver_cloud(layout, XYZ, x=(0, 7), y=(4, 7), z=(8, 7))
    short.data = short.data[:-4]
    with pytest.raises(ValueError, match="holds 44 bytes, expected row_step"):
        cloud_to_xyz(short)
    outside = driver_cloud(layout, XYZ, x=(0, 7), y=(4, 7), z=(14, 7))
    with pytest.raises(ValueError, match=r"\('z'\).offset: spans bytes 14..18 but point_step is 16"):
        cloud_to_xyz(outside)


# --- class table, instance depth, markers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cityscapes() -> ClassTable:
    return ClassTable.cityscapes()


def test_class_table_message_lists_ids_names_colors(cityscapes: ClassTable) -> None:
    msg = class_table_to_msg(cityscapes, HEADER)
    assert msg.header == HEADER and msg.label_divisor == 1000 and len(msg.classes) == 19
    car = next(c for c in msg.classes if c.name == "car")
    assert (car.id, car.is_thing, car.r, car.g, car.b) == (26, True, 0, 0, 142)
    road = msg.classes[0]
    assert (road.id, road.name, road.is_thing) == (7, "road", False)


@pytest.fixture
def table(cityscapes: ClassTable) -> InstanceDepthTable:
    """road (stuff, 7000), car 26003 with depth, person 24001 without valid depth."""
    car, person, road = (cityscapes.ids.tolist().index(i) for i in (26, 24, 7))
    nan = np.nan
    return InstanceDepthTable(
        panoptic_id=np.array([7000, 24001, 26003], np.int32),
        class_id=np.array([7, 24, 26], np.int32),
        class_index=np.array([road, person, car]),
        instance_id=np.array([0, 1, 3], np.int32),
        is_thing=np.array([False, True, True]),
        score=np.array([0.9, 0.8, 0.75], np.float32),
        pixel_count=np.array([5000, 40, 1200]),
        valid_count=np.array([800, 0, 300]),
        bbox=np.array([[0, 200, 1242, 375], [50, 60, 54, 80], [600, 150, 700, 210]], np.int32),
        depth_mean=np.array([9.0, nan, 12.5], np.float32),
        depth_median=np.array([8.5, nan, 12.34], np.float32),
        depth_min=np.array([2.0, nan, 11.0], np.float32),
        depth_p10=np.array([3.0, nan, 11.5], np.float32),
        centroid=np.array([[0.1, 1.6, 9.0], [nan, nan, nan], [-1.25, 0.5, 12.5]], np.float32),
    )


def test_instance_depth_message_carries_the_table(table: InstanceDepthTable, cityscapes: ClassTable) -> None:
    msg = instances_to_msg(table, cityscapes, HEADER)
    assert msg.header == HEADER and len(msg.instances) == 3
    road, person, car = msg.instances
    assert (car.panoptic_id, car.instance_id, car.class_id, car.class_name, car.is_thing) == (26003, 3, 26, "car", True)
    assert (car.pixel_count, car.valid_depth_count) == (1200, 300)
    assert (car.bbox.x_offset, car.bbox.y_offset, car.bbox.width, car.bbox.height) == (600, 150, 100, 60)
    assert (car.depth_mean, car.depth_min, car.depth_p10) == (12.5, 11.0, 11.5)
    assert car.depth_median == pytest.approx(12.34) and car.score == pytest.approx(0.75)
    assert (car.centroid.x, car.centroid.y, car.centroid.z) == (-1.25, 0.5, 12.5)
    assert (road.class_name, road.is_thing, road.instance_id) == ("road", False, 0)
    assert person.valid_depth_count == 0 and np.isnan(person.depth_median) and np.isnan(person.centroid.z)


def test_markers_label_things_with_depth_after_a_deleteall(table: InstanceDepthTable, cityscapes: ClassTable) -> None:
    markers = markers_from_instances(table, cityscapes, HEADER, lifetime_s=0.5).markers
    assert [m.action for m in markers] == [Marker.DELETEALL, Marker.ADD]
    label = markers[1]
    assert (label.type, label.text, label.id, label.header) == (Marker.TEXT_VIEW_FACING, "car 12.3 m", 26003, HEADER)
    assert (label.pose.position.x, label.pose.position.y, label.pose.position.z) == (-1.25, 0.5, 12.5)
    assert (label.color.r, label.color.g, label.color.b, label.color.a) == pytest.approx((0, 0, 142 / 255, 1))
    assert (label.lifetime.sec, label.lifetime.nanosec) == (0, 500_000_000)
    assert label.scale.z > 0 and label.ns == markers[0].ns


# --- LiDAR -> camera extrinsic ----------------------------------------------------------------------------------


def test_quaternion_of_90_degrees_about_z() -> None:
    s = np.sqrt(0.5)
    np.testing.assert_allclose(quaternion_to_rotation(0, 0, s, s), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(quaternion_to_rotation(s, 0, 0, s), [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-12)
    np.testing.assert_array_equal(quaternion_to_rotation(0, 0, 0, 1), np.eye(3))


def test_transform_to_matrix_rotates_then_translates() -> None:
    s = np.sqrt(0.5)
    transform = Transform(translation=Vector3(x=1.0, y=2.0, z=3.0), rotation=Quaternion(x=0.0, y=0.0, z=s, w=s))
    np.testing.assert_allclose(transform_to_matrix(transform) @ [1, 0, 0, 1], [1, 3, 3, 1], atol=1e-12)


def test_non_unit_quaternion_raises() -> None:
    with pytest.raises(ValueError, match="expected unit norm, got 0.0"):
        quaternion_to_rotation(0, 0, 0, 0)


# LiDAR (x forward, y left, z up) -> camera optical (z forward, x right, y down), plus a lever arm.
VELO_TO_CAM = [0, -1, 0, 0.1, 0, 0, -1, -0.2, 1, 0, 0, -0.3, 0, 0, 0, 1]


def test_extrinsic_parameter_maps_lidar_forward_to_camera_forward() -> None:
    m = extrinsic_from_parameter(VELO_TO_CAM)
    np.testing.assert_array_equal(m @ [10, 0, 0, 1], [0.1, -0.2, 9.7, 1])
    np.testing.assert_array_equal(TransformSource(None, VELO_TO_CAM).lookup("cam", "velo", HEADER.stamp), m)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (VELO_TO_CAM[:15], "expected 16 row-major values of a 4x4 matrix, got 15"),
        (VELO_TO_CAM[:3] + [np.nan] + VELO_TO_CAM[4:], "NaN or inf"),
        (VELO_TO_CAM[:12] + [0, 0, 1, 1], "last row must be 0 0 0 1"),
        ([2 * v if i < 11 and i % 4 < 3 else v for i, v in enumerate(VELO_TO_CAM)], "not a rotation"),
        ([-v if i < 4 else v for i, v in enumerate(VELO_TO_CAM)], r"det = -1\.0000"),
    ],
)
def test_invalid_extrinsic_parameter_raises(values: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        extrinsic_from_parameter(values)


class FakeTransformException(Exception):
    pass


class FakeBuffer:
    """tf2_ros.Buffer stand-in that records lookups; the transform is 90 degrees about z plus (1, 2, 3)."""

    lookups: list[tuple] = []
    clears = 0

    def __init__(self, node: object = None) -> None:
        pass

    def clear(self) -> None:
        FakeBuffer.clears += 1

    def lookup_transform(self, target: str, source: str, time: object, timeout: object) -> TransformStamped:
        self.lookups.append((target, source, time.nanoseconds, timeout.nanoseconds))
        if source == "unknown":
            raise FakeTransformException("frame unknown does not exist")
        s = np.sqrt(0.5)
        return TransformStamped(
            transform=Transform(translation=Vector3(x=1.0, y=2.0, z=3.0), rotation=Quaternion(z=s, w=s))
        )


def test_tf_lookup_targets_the_camera_at_the_message_stamp(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.SimpleNamespace(
        Buffer=FakeBuffer, TransformListener=lambda buffer, node: None, TransformException=FakeTransformException
    )
    monkeypatch.setitem(sys.modules, "tf2_ros", fake)
    extrinsic = TransformSource(None, [], timeout_s=0.25)
    m = extrinsic.lookup("cam_optical", "velodyne", HEADER.stamp)
    np.testing.assert_allclose(m @ [1, 0, 0, 1], [1, 3, 3, 1], atol=1e-12)
    assert FakeBuffer.lookups[-1] == ("cam_optical", "velodyne", 1700000000_123456789, 250_000_000)
    extrinsic.lookup("base_link", "cam_optical", HEADER.stamp, wait=False)  # what TF holds now: no timeout
    assert FakeBuffer.lookups[-1] == ("base_link", "cam_optical", 1700000000_123456789, 0)
    with pytest.raises(LookupError, match="no transform unknown -> cam_optical at 1700000000.123456789"):
        extrinsic.lookup("cam_optical", "unknown", HEADER.stamp)
    extrinsic.clear()
    assert FakeBuffer.clears == 1


def test_without_parameter_or_tf2_there_is_no_extrinsic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tf2_ros", None)  # import fails
    with pytest.raises(ValueError, match="lidar_to_camera is empty and tf2_ros is not installed"):
        TransformSource(None, [])
