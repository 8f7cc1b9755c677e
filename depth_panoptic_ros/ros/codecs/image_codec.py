"""sensor_msgs/Image and CompressedImage <-> numpy.

Camera drivers publish many encodings (yuyv webcams, mono industrial cameras, bgra from GPU pipelines), so the
decoder turns each into the (H, W, 3) uint8 RGB the networks take, honoring row padding (``step``) and byte
order. Depth follows REP 118: 32FC1 meters with NaN invalid, or 16UC1 millimeters with 0 invalid; inside the
package depth is float32 meters with 0 invalid.
"""

from __future__ import annotations

import sys

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from depth_panoptic_ros.ros.codecs.byte_buffers import message_bytes, to_byte_array
from depth_panoptic_ros.ros.codecs.validation import (
    DEFAULT_LIMITS,
    InputLimits,
    InvalidMessage,
    check_compressed_image,
    check_image,
)

# encoding -> (channels, dtype, OpenCV conversion to RGB or None when already RGB)
_COLOR_ENCODINGS: dict[str, tuple[int, str, int | None]] = {
    "rgb8": (3, "u1", None),
    "bgr8": (3, "u1", cv2.COLOR_BGR2RGB),
    "rgba8": (4, "u1", cv2.COLOR_RGBA2RGB),
    "bgra8": (4, "u1", cv2.COLOR_BGRA2RGB),
    "mono8": (1, "u1", cv2.COLOR_GRAY2RGB),
    "mono16": (1, "u2", cv2.COLOR_GRAY2RGB),
    # Packed 4:2:2, two bytes per pixel; ROS calls UYVY "yuv422" and YUYV "yuv422_yuy2".
    "yuv422": (2, "u1", cv2.COLOR_YUV2RGB_UYVY),
    "uyvy": (2, "u1", cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": (2, "u1", cv2.COLOR_YUV2RGB_YUYV),
    "yuyv": (2, "u1", cv2.COLOR_YUV2RGB_YUYV),
}

# the widest pixel of the encodings decoded (bgra8, rgba8): what limits.max_image_pixels allows per pixel
MAX_PIXEL_BYTES = max(channels * np.dtype(dtype).itemsize for channels, dtype, _ in _COLOR_ENCODINGS.values())

# encoding -> (channels, dtype) of the images this package publishes
_OUTPUT_ENCODINGS: dict[str, tuple[int, str]] = {
    "rgb8": (3, "u1"),
    "16UC1": (1, "u2"),
    "32SC1": (1, "i4"),
    "32FC1": (1, "f4"),
}

_MM_PER_M = 1000.0


def image_pixels(msg: Image, channels: int, dtype: str, limits: InputLimits = DEFAULT_LIMITS) -> np.ndarray:
    """A zero-copy (H, W) or (H, W, C) view of the pixels, skipping the padding at the end of each row."""
    dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    check_image(msg, channels * dt.itemsize, limits)
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    data = message_bytes(msg.data)
    view = np.ndarray((height, width, channels), dt, buffer=data, strides=(step, channels * dt.itemsize, dt.itemsize))
    return view[..., 0] if channels == 1 else view


def decode_image(msg: Image, limits: InputLimits = DEFAULT_LIMITS) -> np.ndarray:
    """(H, W, 3) uint8 RGB; a read-only view of the message buffer for rgb8, a new array otherwise.

    mono16 keeps its 8 most significant bits.
    """
    spec = _COLOR_ENCODINGS.get(msg.encoding)
    if spec is None:
        raise InvalidMessage(
            "encoding", f"unsupported image encoding {msg.encoding!r}; supported: {', '.join(_COLOR_ENCODINGS)}"
        )
    channels, dtype, conversion = spec
    if channels == 2 and msg.width % 2:
        raise InvalidMessage("width", f"image {msg.encoding!r}: 4:2:2 chroma needs an even width, got {msg.width}")
    pixels = image_pixels(msg, channels, dtype, limits)
    if conversion is None:
        pixels.flags.writeable = False
        return pixels
    if dtype == "u2":
        pixels = (pixels >> 8).astype(np.uint8)
    return cv2.cvtColor(pixels, conversion)


def decode_compressed_image(msg: CompressedImage, limits: InputLimits = DEFAULT_LIMITS) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a jpeg or png CompressedImage (image_transport's ``compressed``)."""
    width, height = check_compressed_image(msg, limits)
    bgr = cv2.imdecode(message_bytes(msg.data), cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape[:2] != (height, width):
        got = "nothing" if bgr is None else f"{bgr.shape[1]}x{bgr.shape[0]}"
        raise InvalidMessage("data", f"format {msg.format!r}: a {width}x{height} header, OpenCV decodes {got}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_depth(msg: Image) -> np.ndarray:
    """(H, W) float32 meters, 0 = invalid, from a REP 118 depth image (32FC1 meters or 16UC1 millimeters)."""
    if msg.encoding == "32FC1":
        depth = image_pixels(msg, 1, "f4")
        return np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)
    if msg.encoding == "16UC1":
        return (image_pixels(msg, 1, "u2") / np.float32(_MM_PER_M)).astype(np.float32)
    raise ValueError(f"unsupported depth encoding {msg.encoding!r}; supported: 32FC1 (meters), 16UC1 (millimeters)")


def image_to_msg(values: np.ndarray, encoding: str, header: Header) -> Image:
    """An Image holding ``values`` (one copy), stamped with ``header`` (the input image's, per REP 103)."""
    spec = _OUTPUT_ENCODINGS.get(encoding)
    if spec is None:
        raise ValueError(f"cannot publish encoding {encoding!r}; supported: {', '.join(_OUTPUT_ENCODINGS)}")
    channels, dtype = spec
    values = np.asarray(values)
    expected_ndim = 2 if channels == 1 else 3
    if values.ndim != expected_ndim or (channels > 1 and values.shape[2] != channels):
        shape = "(H, W)" if channels == 1 else f"(H, W, {channels})"
        raise ValueError(f"image {encoding!r}: expected shape {shape}, got {values.shape}")
    if values.dtype != np.dtype(dtype):
        raise ValueError(f"image {encoding!r}: expected dtype {np.dtype(dtype)}, got {values.dtype}")
    height, width = values.shape[:2]
    msg = Image(
        header=header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=sys.byteorder == "big",
        step=width * channels * values.itemsize,
    )
    msg.data = to_byte_array(values)  # after construction: one copy fewer (see byte_buffers)
    return msg


def depth_to_msg(depth: np.ndarray, header: Header, encoding: str = "32FC1") -> Image:
    """A REP 118 depth image from float32 meters with 0 = invalid.

    16UC1 rounds to millimeters; depth beyond 65.535 m does not fit and becomes 0 (invalid).
    """
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.dtype != np.float32:
        raise ValueError(f"depth: expected (H, W) float32 meters, got {depth.shape} {depth.dtype}")
    valid = depth > 0
    if encoding == "32FC1":
        return image_to_msg(np.where(valid, depth, np.float32(np.nan)), encoding, header)
    if encoding == "16UC1":
        mm = np.rint(depth * np.float32(_MM_PER_M))
        fits = valid & (mm <= np.iinfo(np.uint16).max)
        return image_to_msg(np.where(fits, mm, 0).astype(np.uint16), encoding, header)
    raise ValueError(f"unsupported depth encoding {encoding!r}; supported: 32FC1 (meters), 16UC1 (millimeters)")
