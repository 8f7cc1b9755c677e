"""Validation at the edge: every field of Image, CompressedImage, CameraInfo and PointCloud2 that the package
reads, checked against the message's own sizes and the REPs before any decoding.

A safety-relevant consumer must never turn a malformed message into plausible-looking output, so each check
raises :class:`InvalidMessage` naming the field; the node logs it (rate-limited), skips the frame and counts it,
the bag tools skip and count the set. The checks read only the message's scalar fields and field lists (the
compressed-image checks read a few header bytes), so they run before anything proportional to the message is
allocated, and :class:`InputLimits` bounds what decoding may allocate.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from depth_panoptic_ros.geometry.pointcloud2 import FLOAT32, FLOAT64, NUMPY_TYPES

NS_PER_S = 1_000_000_000
# Distortion models of REP 104 / image_pipeline and their coefficient counts (OpenCV's orders). An empty D means
# "no distortion" for any of them, as simulators publish it.
DISTORTION_COEFFICIENTS = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}
# A rectified pinhole image sees between 1 and 170 degrees across: f = size / (2 tan(fov / 2)).
MIN_FOV_DEG, MAX_FOV_DEG = 1.0, 170.0
MAX_RECTIFIED_ZOOM = 2.0  # P's focal length within this factor of K's (rectification zooms by ~0.7..1.3)
MATRIX_TOLERANCE = 1e-6  # for the fixed entries of K and P (0 and 1)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic), not DHT/JPG/DAC (C4, C8, CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class InvalidMessage(ValueError):
    """A message rejected at the edge; ``field`` is the offending field's path in the message (e.g.
    ``header.stamp.nanosec``, ``fields[2].count``)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True)
class InputLimits:
    """The largest inputs accepted; larger ones are rejected before decoding allocates anything for them.

    Defaults: twice an 8 MP (3840x2160) camera; four 128-beam x 2048-column LiDAR sweeps (262,144 points each).
    """

    max_image_pixels: int = 16_777_216
    max_cloud_points: int = 1_048_576

    def __post_init__(self) -> None:
        for name in ("max_image_pixels", "max_cloud_points"):
            if getattr(self, name) < 1:
                raise ValueError(f"limits.{name}: expected >= 1, got {getattr(self, name)}")


DEFAULT_LIMITS = InputLimits()


def check_stamp(header: Any, field: str = "header") -> None:
    """REP 103 / builtin_interfaces: sec >= 0 (rclpy's Time rejects negative) and 0 <= nanosec < 10^9."""
    stamp = header.stamp
    if not 0 <= stamp.nanosec < NS_PER_S:
        raise InvalidMessage(f"{field}.stamp.nanosec", f"{stamp.nanosec} is not in [0, 10^9)")
    if stamp.sec < 0:
        raise InvalidMessage(f"{field}.stamp.sec", f"{stamp.sec} is negative (time before the epoch)")


def check_arrival(msg: Any, limits: InputLimits = DEFAULT_LIMITS) -> None:
    """What an Image, CompressedImage or PointCloud2 passes before it is queued for synchronization: a valid
    stamp (an invalid one would corrupt the synchronizer's timeline) and a size within limits (so that no
    oversized message is held). The full layout is checked when the set is decoded."""
    check_stamp(msg.header)
    if hasattr(msg, "point_step"):
        _check_count(int(msg.width), int(msg.height), "points", "max_cloud_points", limits)
    elif hasattr(msg, "format"):
        check_compressed_image(msg, limits)
    else:
        _check_count(int(msg.width), int(msg.height), "pixels", "max_image_pixels", limits)


def _check_count(width: int, height: int, what: str, limit: str, limits: InputLimits) -> None:
    if width * height > getattr(limits, limit):
        raise InvalidMessage(
            "width, height",
            f"{width}x{height} = {width * height} {what}, above limits.{limit} {getattr(limits, limit)}",
        )


def _check_endianness(msg: Any) -> None:
    if msg.is_bigendian not in (0, 1, False, True):
        raise InvalidMessage("is_bigendian", f"expected 0 or 1, got {msg.is_bigendian}")


def check_image(msg: Any, pixel_bytes: int, limits: InputLimits = DEFAULT_LIMITS) -> None:
    """A raw Image of ``pixel_bytes`` bytes per pixel: size within limits, ``step`` holds a row, and ``data``
    is exactly step * height bytes (REP 118: rows may be padded, nothing else)."""
    check_stamp(msg.header)
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    what = f"image {msg.encoding!r} {width}x{height}"
    if width <= 0 or height <= 0:
        raise InvalidMessage("width, height", f"{what} has no pixels")
    _check_count(width, height, "pixels", "max_image_pixels", limits)
    _check_endianness(msg)
    row_bytes = width * pixel_bytes
    if step < row_bytes:
        raise InvalidMessage("step", f"{what}: step {step} is smaller than one row of pixels ({row_bytes} bytes)")
    if len(msg.data) != step * height:
        raise InvalidMessage(
            "data", f"{what}: data holds {len(msg.data)} bytes, expected step*height = {step * height}"
        )


def check_compressed_image(msg: Any, limits: InputLimits = DEFAULT_LIMITS) -> tuple[int, int]:
    """(width, height) of a CompressedImage read from its PNG or JPEG header, within limits, and the stream
    complete (a cut JPEG decodes to a half-grey image without an error)."""
    check_stamp(msg.header)
    fmt = msg.format
    if "compressedDepth" in fmt:
        raise InvalidMessage("format", f"{fmt!r}: compressedDepth is not a color image")
    data = msg.data
    if bytes(data[:2]) == _JPEG_START:
        width, height = _jpeg_size(memoryview(data))
        if bytes(data[-2:]) != _JPEG_END:
            raise InvalidMessage("data", f"format {fmt!r}: the JPEG stream is cut (no end-of-image marker)")
    elif bytes(data[:8]) == _PNG_SIGNATURE and bytes(data[12:16]) == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", bytes(data[16:24]))
        if bytes(data[-8:]) != _PNG_END:
            raise InvalidMessage("data", f"format {fmt!r}: the PNG stream is cut (no IEND chunk)")
    else:
        raise InvalidMessage("data", f"format {fmt!r}: {len(data)} bytes that are neither a PNG nor a JPEG stream")
    if width <= 0 or height <= 0 or width * height > limits.max_image_pixels:
        raise InvalidMessage(
            "data",
            f"format {fmt!r}: {width}x{height} image, outside 1..limits.max_image_pixels {limits.max_image_pixels}",
        )
    return width, height


def _jpeg_size(view: memoryview) -> tuple[int, int]:
    """(width, height) from the first start-of-frame segment, walking the marker segments after SOI."""
    pos = 2
    while pos + 4 <= len(view):
        if view[pos] != 0xFF:
            break
        marker = view[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = (view[pos + 2] << 8) | view[pos + 3]
        if marker in _JPEG_SOF and pos + 9 <= len(view):
            height = (view[pos + 5] << 8) | view[pos + 6]
            width = (view[pos + 7] << 8) | view[pos + 8]
            return width, height
        if marker == 0xDA or length < 2:  # start of scan before any frame header, or a broken segment
            break
        pos += 2 + length
    raise InvalidMessage("data", "JPEG stream without a frame header (SOF) before its image data")


def check_cloud(msg: Any, limits: InputLimits = DEFAULT_LIMITS) -> None:
    """A PointCloud2 whose declared layout matches its data: fields unique, non-overlapping, inside the point,
    of known datatype and count >= 1; float x, y, z of count 1; row_step >= width * point_step and data exactly
    row_step * height bytes; at most limits.max_cloud_points points."""
    check_stamp(msg.header)
    width, height, point_step, row_step = int(msg.width), int(msg.height), int(msg.point_step), int(msg.row_step)
    _check_count(width, height, "points", "max_cloud_points", limits)
    _check_endianness(msg)
    if point_step <= 0:
        raise InvalidMessage("point_step", f"expected > 0, got {point_step}")
    spans = []
    names: dict[str, int] = {}
    for i, f in enumerate(msg.fields):
        where = f"fields[{i}] ({f.name!r})"
        if f.name in names:
            raise InvalidMessage(where, f"duplicates fields[{names[f.name]}]")
        names[f.name] = i
        if f.datatype not in NUMPY_TYPES:
            raise InvalidMessage(f"{where}.datatype", f"unknown datatype {f.datatype} (expected 1..8)")
        if f.count < 1:
            raise InvalidMessage(f"{where}.count", f"expected >= 1, got {f.count}")
        end = f.offset + np.dtype(NUMPY_TYPES[f.datatype]).itemsize * f.count
        if end > point_step:
            raise InvalidMessage(f"{where}.offset", f"spans bytes {f.offset}..{end} but point_step is {point_step}")
        spans.append((f.offset, end, where))
    spans.sort()
    for (_, end, first), (start, _, second) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise InvalidMessage(f"{second}.offset", f"overlaps {first} (bytes from {start} are read twice)")
    for axis in "xyz":
        if axis not in names:
            raise InvalidMessage("fields", f"lacks field {axis!r}; it has {list(names)}")
        f = msg.fields[names[axis]]
        if f.datatype not in (FLOAT32, FLOAT64) or f.count != 1:
            raise InvalidMessage(
                f"fields[{names[axis]}] ({axis!r})",
                f"expected one FLOAT32 or FLOAT64, got datatype {f.datatype} x{f.count}",
            )
    if row_step < width * point_step:
        raise InvalidMessage("row_step", f"{row_step} is smaller than width * point_step = {width * point_step}")
    if len(msg.data) != row_step * height:
        raise InvalidMessage(
            "data",
            f"holds {len(msg.data)} bytes, expected row_step * height = {row_step} * {height} = {row_step * height}",
        )


def check_camera_info(msg: Any) -> None:
    """A CameraInfo of a calibrated camera whose images are rectified (the pipeline projects with P):
    K and P finite with the REP 104 fixed entries, focal lengths giving a 1..170 degree field of view, P's
    within a factor 2 of K's, the principal point near the image, D matching the distortion model, and an
    all-zero P only for a camera without distortion (then P = [K | 0] exactly)."""
    check_stamp(msg.header)
    width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0:
        raise InvalidMessage("width, height", f"expected a positive size, got {width}x{height}")
    if not 1 <= max(msg.binning_x, 1) <= width or not 1 <= max(msg.binning_y, 1) <= height:
        raise InvalidMessage(
            "binning_x, binning_y", f"{msg.binning_x}, {msg.binning_y} exceed the {width}x{height} image"
        )
    roi = msg.roi
    if (roi.width or roi.height) and (roi.x_offset + roi.width > width or roi.y_offset + roi.height > height):
        raise InvalidMessage(
            "roi", f"({roi.x_offset}, {roi.y_offset}, {roi.width}x{roi.height}) lies outside the {width}x{height} image"
        )
    D = np.asarray(msg.d, dtype=np.float64)
    _check_distortion(msg.distortion_model, D)
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    P = np.asarray(msg.p, dtype=np.float64).reshape(3, 4)
    _check_matrix("k", K, [(1, 0, 0.0), (2, 0, 0.0), (2, 1, 0.0), (2, 2, 1.0)], width, height)
    if not P.any():
        if D.any():
            raise InvalidMessage("p", "all zero (uncalibrated rectification) while D is not: images are not rectified")
        return
    # P[:, 3] is free: Tx, Ty of a stereo rig, and KITTI's P2 also carries a small Tz (its camera offset).
    _check_matrix("p", P, [(1, 0, 0.0), (2, 0, 0.0), (2, 1, 0.0), (2, 2, 1.0)], width, height)
    for axis, name in ((0, "fx"), (1, "fy")):
        ratio = P[axis, axis] / K[axis, axis]
        if not 1 / MAX_RECTIFIED_ZOOM <= ratio <= MAX_RECTIFIED_ZOOM:
            raise InvalidMessage(
                "p", f"{name} {P[axis, axis]:g} is {ratio:.3g}x K's {K[axis, axis]:g} (expected within a factor 2)"
            )


def _check_distortion(model: str, D: np.ndarray) -> None:
    if model not in DISTORTION_COEFFICIENTS:
        raise InvalidMessage(
            "distortion_model", f"unknown {model!r}; expected one of {', '.join(DISTORTION_COEFFICIENTS)}"
        )
    if D.size and D.size != DISTORTION_COEFFICIENTS[model]:
        raise InvalidMessage("d", f"{model} has {DISTORTION_COEFFICIENTS[model]} coefficients, got {D.size}")
    if not np.isfinite(D).all():
        raise InvalidMessage("d", f"holds NaN or inf: {D.tolist()}")


def _check_matrix(name: str, m: np.ndarray, fixed: list[tuple[int, int, float]], width: int, height: int) -> None:
    if not np.isfinite(m).all():
        raise InvalidMessage(name, f"holds NaN or inf: {m.ravel().tolist()}")
    for row, col, value in fixed:
        if abs(m[row, col] - value) > MATRIX_TOLERANCE:
            raise InvalidMessage(f"{name}[{row * m.shape[1] + col}]", f"expected {value:g}, got {m[row, col]:g}")
    for axis, size, label in ((0, width, "fx"), (1, height, "fy")):
        f = m[axis, axis]
        low = size / (2 * math.tan(math.radians(MAX_FOV_DEG) / 2))
        high = size / (2 * math.tan(math.radians(MIN_FOV_DEG) / 2))
        if not low <= f <= high:
            raise InvalidMessage(
                name,
                f"{label} {f:g} px is implausible for {size} px across (expected {low:.3g}..{high:.3g}: "
                f"a {MIN_FOV_DEG:g}..{MAX_FOV_DEG:g} degree field of view)",
            )
        c = m[axis, 2]
        if not -0.5 * size <= c <= 1.5 * size:
            raise InvalidMessage(name, f"principal point {c:g} lies far outside the image (0..{size} px)")
