"""The node's serialized inputs: the header and size read from the CDR bytes against rclpy's own serialization, and
the arrival checks on them before anything else is deserialized."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("sensor_msgs.msg")

import cv2  # noqa: E402
from node_fixtures import cloud_msg, lidar_points  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, PointCloud2  # noqa: E402

from depth_panoptic_ros.ros.codecs import serialized_input  # noqa: E402
from depth_panoptic_ros.ros.codecs.serialized_input import SerializedInput, read_head  # noqa: E402
from depth_panoptic_ros.ros.codecs.validation import InputLimits, InvalidMessage, check_arrival  # noqa: E402


def _image(frame_id: str, sec: int = 12, nanosec: int = 345) -> Image:
    msg = Image(height=2, width=3, encoding="rgb8", step=9)
    msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec = frame_id, sec, nanosec
    msg.data = bytes(range(18))
    return msg


def _big_endian_image(msg: Image) -> bytes:
    """An Image in big-endian plain CDR, written member by member (rclpy writes little endian only)."""
    out = bytearray(b"\x00\x00\x00\x00")

    def align() -> None:
        out.extend(b"\x00" * (-(len(out) - 4) % 4))

    def string(text: str) -> None:
        align()
        raw = text.encode() + b"\x00"
        out.extend(struct.pack(">I", len(raw)) + raw)

    out.extend(struct.pack(">iI", msg.header.stamp.sec, msg.header.stamp.nanosec))
    string(msg.header.frame_id)
    align()
    out.extend(struct.pack(">II", msg.height, msg.width))
    string(msg.encoding)
    out.append(msg.is_bigendian)
    align()
    out.extend(struct.pack(">II", msg.step, len(msg.data)) + bytes(msg.data))
    return bytes(out)


@pytest.mark.parametrize("frame_id", ["", "c", "ca", "cam", "came", "camera_optical_frame"])  # every padding
def test_image_head_matches_rclpy_serialization_in_both_byte_orders(frame_id: str) -> None:
    msg = _image(frame_id, sec=-5, nanosec=2**32 - 1)  # invalid stamps must reach the checks unchanged
    little = serialize_message(msg)
    big = _big_endian_image(msg)
    assert little[:2] == b"\x00\x01" and big[:2] == b"\x00\x00"
    assert deserialize_message(big, Image) == msg  # the hand-written big-endian buffer is a valid Image
    for data in (little, big):
        head = read_head(Image, data)
        assert head.header == msg.header
        assert (head.height, head.width, len(head.data)) == (2, 3, 0)
        assert SerializedInput(Image, data).decode() == msg


@pytest.mark.parametrize("frame_id", ["", "l", "li", "lid", "lidar"])
def test_cloud_head_matches_rclpy_serialization(frame_id: str) -> None:
    msg = cloud_msg(lidar_points(beams=4, azimuths=16), 0.0)
    msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec = frame_id, 1_700_000_000, 999_999_999
    msg.height, msg.width, msg.row_step = 4, 16, 16 * msg.point_step  # organised: height and width both read
    data = serialize_message(msg)
    head = read_head(PointCloud2, data)
    assert head.header == msg.header and (head.height, head.width) == (4, 16)
    decoded = SerializedInput(PointCloud2, data).decode()
    assert decoded == msg and bytes(decoded.data) == bytes(msg.data)


def test_compressed_image_head_is_the_whole_message() -> None:
    msg = CompressedImage(format="png", data=b"\x89PNG not really")
    msg.header.frame_id, msg.header.stamp.sec = "camera", 7
    arrived = SerializedInput(CompressedImage, serialize_message(msg))
    assert arrived.head == msg and arrived.decode() is arrived.head and arrived.header == msg.header


@pytest.mark.parametrize(
    ("sec", "nanosec", "field"),
    [(-5, 0, "header.stamp.sec"), (-(2**31), 0, "header.stamp.sec"), (3, 10**9, "header.stamp.nanosec"),
     (3, 2**32 - 1, "header.stamp.nanosec")],
)  # fmt: skip
def test_invalid_stamps_are_rejected_from_the_head(sec: int, nanosec: int, field: str) -> None:
    head = SerializedInput(Image, serialize_message(_image("cam", sec, nanosec))).head
    with pytest.raises(InvalidMessage) as error:
        check_arrival(head)
    assert error.value.field == field


def test_an_oversized_message_is_rejected_from_its_first_bytes() -> None:
    """A header announcing 10^10 pixels: the head alone (no data bytes at all) is enough to reject it."""
    msg = Image(height=100_000, width=100_000, encoding="rgb8", step=300_000)
    msg.header.stamp.sec = 1
    head_bytes = serialize_message(msg)[:32]  # header, height, width: the rest is cut off
    with pytest.raises(Exception):  # noqa: B017, PT011 - rclpy's own error: the buffer holds no Image
        deserialize_message(head_bytes, Image)
    arrived = SerializedInput(Image, head_bytes)
    with pytest.raises(InvalidMessage, match="above limits.max_image_pixels") as error:
        check_arrival(arrived.head, InputLimits())
    assert error.value.field == "width, height"
    with pytest.raises(InvalidMessage) as error:  # and were it ever decoded, a clear rejection, not a crash
        arrived.decode()
    assert error.value.field == "cdr"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"", "cdr"),
        (b"\x00\x03\x00\x00" + bytes(40), "cdr"),  # parameter-list CDR: not what ROS 2 sends for these types
        (b"\x01\x01\x00\x00" + bytes(40), "cdr"),
        (b"\x00\x01\x00\x00\x01\x00\x00\x00", "header.stamp.nanosec"),
        (b"\x00\x01\x00\x00" + bytes(8) + struct.pack("<I", 1000) + b"abc\x00", "header.frame_id"),
        (b"\x00\x01\x00\x00" + bytes(8) + struct.pack("<I", 0), "header.frame_id"),
        (b"\x00\x01\x00\x00" + bytes(8) + struct.pack("<I", 3) + b"\xff\xfe\x00", "header.frame_id"),
        (b"\x00\x01\x00\x00" + bytes(8) + struct.pack("<I", 4) + b"cam\x00" + bytes(4), "width"),
    ],
)
def test_buffers_that_hold_no_header_name_the_field(data: bytes, field: str) -> None:
    with pytest.raises(InvalidMessage) as error:
        SerializedInput(Image, data)
    assert error.value.field == field


# 100 pixels of the widest encoding decoded (rgba8, 4 bytes) or 100 points of 64 bytes, + 65,536 for the rest
SMALL_LIMITS = InputLimits(max_image_pixels=100, max_cloud_points=100)
BUDGETS = {Image: 100 * 4 + 65_536, CompressedImage: 100 * 4 + 65_536, PointCloud2: 100 * 64 + 65_536}
LIMIT_NAMES = {Image: "max_image_pixels", CompressedImage: "max_image_pixels", PointCloud2: "max_cloud_points"}


def _small_message(msg_type: type) -> Any:
    """A well-formed message of a few pixels or points (within SMALL_LIMITS)."""
    if msg_type is Image:
        return _image("cam")
    if msg_type is CompressedImage:
        png = cv2.imencode(".png", np.arange(18, dtype=np.uint8).reshape(2, 3, 3))[1].tobytes()
        return CompressedImage(format="png", data=png)
    return cloud_msg(lidar_points(beams=4, azimuths=16), 1.0)


def _serialized_at(msg: Any, size: int) -> bytes:
    """``msg`` serialized to exactly ``size`` bytes by growing its data (before a PNG's final IEND chunk, so that
    the stream still looks complete); its declared width and height stay as they are."""
    extra = size - len(serialize_message(msg))
    data = bytes(msg.data)
    msg.data = data[:-12] + bytes(extra) + data[-12:] if isinstance(msg, CompressedImage) else data + bytes(extra)
    out = serialize_message(msg)
    assert len(out) == size
    return out


def _arrive(msg_type: type, data: bytes) -> SerializedInput:
    """What the node does with an image or cloud as it arrives (DepthPanopticNode._on_input)."""
    arrived = SerializedInput(msg_type, data, SMALL_LIMITS)
    check_arrival(arrived.head, SMALL_LIMITS)
    return arrived


@pytest.mark.parametrize("msg_type", [Image, CompressedImage, PointCloud2])
def test_a_huge_data_buffer_behind_small_declared_sizes_is_rejected_before_deserialization(
    msg_type: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    deserialized: list[type] = []
    real_deserialize = serialized_input.deserialize_message
    monkeypatch.setattr(
        serialized_input, "deserialize_message", lambda data, t: deserialized.append(t) or real_deserialize(data, t)
    )
    budget = BUDGETS[msg_type]
    with pytest.raises(InvalidMessage, match=f"{budget + 1}-byte message is above the {budget} bytes") as error:
        _arrive(msg_type, _serialized_at(_small_message(msg_type), budget + 1))
    assert error.value.field == "data" and f"limits.{LIMIT_NAMES[msg_type]} 100" in str(error.value)
    assert deserialized == []
    _arrive(msg_type, _serialized_at(_small_message(msg_type), budget))  # the largest message the limits allow


@pytest.mark.parametrize("msg_type", [Image, CompressedImage, PointCloud2])
def test_a_small_well_formed_message_passes_the_size_check_and_decodes(msg_type: type) -> None:
    msg = _small_message(msg_type)
    decoded = _arrive(msg_type, serialize_message(msg)).decode()
    assert decoded == msg and bytes(decoded.data) == bytes(msg.data)
