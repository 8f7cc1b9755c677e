"""Large input messages kept serialized (CDR) until their set is processed.

The node subscribes to images and clouds in raw (serialized) form: each arriving message is only read as far as
its length and header (the arrival checks and the synchronizer need no more), and just the sets the worker takes
are deserialized, in the worker thread. Under overload most messages are dropped by the synchronizer or the
newest-set hand-off; turning each into a Python message first took the executor thread's time and the GIL from
the worker (BENCHMARKS.md, "5x overload").

Layout read here (OMG XTypes 1.3, 7.4.3): a 4-byte encapsulation header (byte 1: 0x00 / 0x01 plain CDR big /
little endian, 0x06 / 0x07 plain CDR2 big / little endian, what ROS 2 types, all final, are sent as), then the
members in order, each 4-byte quantity aligned to 4 from the end of that header. Image, CompressedImage and
PointCloud2 start with std_msgs/Header {int32 sec, uint32 nanosec, string frame_id}; Image and PointCloud2 go on
with uint32 height, uint32 width. A string is a uint32 length counting its NUL, then its bytes.
"""

from __future__ import annotations

import struct
from typing import Any

from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, PointCloud2
from std_msgs.msg import Header

from depth_panoptic_ros.ros.codecs.image_codec import MAX_PIXEL_BYTES
from depth_panoptic_ros.ros.codecs.validation import DEFAULT_LIMITS, InputLimits, InvalidMessage

ENCAPSULATION_BYTES = 4
# byte 1 of the encapsulation header -> struct byte order (byte 0 is 0 for these representations)
BYTE_ORDERS = {0x00: ">", 0x01: "<", 0x06: ">", 0x07: "<"}
# A cloud's bytes per point budgeted by limits.max_cloud_points: a point_step of 64, above LiDAR drivers' and PCL's
# point types (16 to 48 bytes).
MAX_POINT_BYTES = 64
# What a message holds besides its pixels or points (header, encoding, field list), budgeted generously.
HEAD_BYTES = 65_536


class _Reader:
    """Sequential reads of 4-byte-aligned CDR members; a read past the end is an InvalidMessage."""

    def __init__(self, data: bytes) -> None:
        if len(data) < ENCAPSULATION_BYTES or data[0] != 0 or data[1] not in BYTE_ORDERS:
            raise InvalidMessage("cdr", f"unknown encapsulation {bytes(data[:2]).hex() or 'none'} (expected plain CDR)")
        self._data, self._order, self._pos = data, BYTE_ORDERS[data[1]], ENCAPSULATION_BYTES

    def _uint32_bytes(self, field: str) -> bytes:
        self._pos += -(self._pos - ENCAPSULATION_BYTES) % 4
        end = self._pos + 4
        if end > len(self._data):
            raise InvalidMessage(field, f"the {len(self._data)}-byte message ends before it")
        raw, self._pos = self._data[self._pos : end], end
        return raw

    def int32(self, field: str) -> int:
        return struct.unpack(self._order + "i", self._uint32_bytes(field))[0]

    def uint32(self, field: str) -> int:
        return struct.unpack(self._order + "I", self._uint32_bytes(field))[0]

    def string(self, field: str) -> str:
        length = self.uint32(field)
        end = self._pos + length
        if length < 1 or end > len(self._data) or self._data[end - 1] != 0:
            raise InvalidMessage(field, f"string of {length} bytes does not fit the {len(self._data)}-byte message")
        try:
            text = bytes(self._data[self._pos : end - 1]).decode()
        except UnicodeDecodeError as exc:
            raise InvalidMessage(field, f"not UTF-8: {exc}") from exc
        self._pos = end
        return text


def read_head(msg_type: type, data: bytes) -> Any:
    """A ``msg_type`` message holding what the arrival checks read: the header, and height and width of an Image or
    a PointCloud2 (their data fields stay empty). A CompressedImage is deserialized whole: its checks read the
    stream's first and last bytes, and it is small."""
    if msg_type is CompressedImage:
        return deserialize(msg_type, data)
    reader = _Reader(data)
    sec, nanosec = reader.int32("header.stamp.sec"), reader.uint32("header.stamp.nanosec")
    header = Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=reader.string("header.frame_id"))
    height = reader.uint32("height")
    return msg_type(header=header, height=height, width=reader.uint32("width"))


def input_kind(msg_type: type) -> str:
    """The node's log source for an input of this type: "lidar" for a cloud, "image" for a raw or compressed one."""
    return "lidar" if msg_type is PointCloud2 else "image"


def check_size(msg_type: type, size: int, limits: InputLimits = DEFAULT_LIMITS) -> None:
    """Rejects a serialized message longer than the largest the limits allow: its pixels (at the widest encoding
    decoded) or points (at MAX_POINT_BYTES each) plus HEAD_BYTES. The declared width x height is checked on the
    head; this bounds what a message declaring few pixels or points but carrying a huge ``data`` may hold."""
    if input_kind(msg_type) == "lidar":
        limit, count, per_item = "max_cloud_points", limits.max_cloud_points, MAX_POINT_BYTES
    else:
        limit, count, per_item = "max_image_pixels", limits.max_image_pixels, MAX_PIXEL_BYTES
    budget = count * per_item + HEAD_BYTES
    if size > budget:
        raise InvalidMessage(
            "data",
            f"the {size}-byte message is above the {budget} bytes that limits.{limit} {count} allows "
            f"({per_item} bytes each + {HEAD_BYTES})",
        )


def deserialize(msg_type: type, data: bytes) -> Any:
    """The whole message; a buffer that does not hold one is an InvalidMessage."""
    try:
        return deserialize_message(data, msg_type)
    except Exception as exc:  # rclpy raises a bare RuntimeError / ValueError / MemoryError from C
        raise InvalidMessage("cdr", f"{len(data)} bytes are not a {msg_type.__name__}: {exc}") from exc


class SerializedInput:
    """One image or cloud as it arrived: its CDR bytes and its head (see :func:`read_head`), the bytes first
    checked against ``limits`` (:func:`check_size`), before anything is read from them. ``header`` is the head's,
    so the synchronizer (message_filters too) matches on it like on a message."""

    __slots__ = ("data", "head", "msg_type")

    def __init__(self, msg_type: type, data: bytes, limits: InputLimits = DEFAULT_LIMITS) -> None:
        check_size(msg_type, len(data), limits)
        self.msg_type, self.data = msg_type, data
        self.head = read_head(msg_type, data)

    @property
    def header(self) -> Header:
        return self.head.header

    @property
    def kind(self) -> str:
        return input_kind(self.msg_type)

    def decode(self) -> Any:
        """The whole message (the head itself for a CompressedImage, already complete)."""
        return self.head if self.msg_type is CompressedImage else deserialize(self.msg_type, self.data)
