"""The sensor_msgs/PointCloud2 memory layout as plain numpy, so that packing and parsing are testable without ROS.

Outgoing panoptic clouds use a fixed little-endian 24-byte point (no padding): x, y, z float32 at 0/4/8,
rgb at 12 as a FLOAT32 field whose bytes hold 0x00RRGGBB (the PCL/RViz convention), label uint32 (class id)
at 16 and instance uint32 (panoptic id) at 20. Incoming clouds are read by field offsets, whatever the driver's
layout (intensity, ring, time, float64 coordinates, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from depth_panoptic_ros.geometry.backproject import PanopticCloud
from depth_panoptic_ros.geometry.pointcloud2_compiled import pack_points

# sensor_msgs/PointField datatype numbers.
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
NUMPY_TYPES = {
    INT8: "i1",
    UINT8: "u1",
    INT16: "i2",
    UINT16: "u2",
    INT32: "i4",
    UINT32: "u4",
    FLOAT32: "f4",
    FLOAT64: "f8",
}


class PointFieldSpec(NamedTuple):
    """One sensor_msgs/PointField: name, byte offset in the point, datatype number, element count."""

    name: str
    offset: int
    datatype: int
    count: int = 1


POINT_FIELDS = (
    PointFieldSpec("x", 0, FLOAT32),
    PointFieldSpec("y", 4, FLOAT32),
    PointFieldSpec("z", 8, FLOAT32),
    PointFieldSpec("rgb", 12, FLOAT32),
    PointFieldSpec("label", 16, UINT32),
    PointFieldSpec("instance", 20, UINT32),
)
POINT_STEP = 24  # rgb is declared FLOAT32 but written as its uint32 bit pattern


@dataclass(frozen=True)
class PackedCloud:
    """The fields of a PointCloud2 message except the header; data is a uint8 view of point_step * N bytes."""

    data: np.ndarray
    width: int
    height: int
    point_step: int
    row_step: int
    is_dense: bool
    fields: tuple[PointFieldSpec, ...]


def pack_cloud(cloud: PanopticCloud, out: np.ndarray | None = None) -> PackedCloud:
    """Packs a cloud into the 24-byte layout; writes into ``out`` (a uint8 buffer) when it is large enough.

    An organized cloud keeps its rows (height = H'); a flat one is a single row. Reusing the buffer of the
    previous frame avoids a fresh allocation per message.
    """
    height, width = cloud.xyz.shape[:2] if cloud.organized else (1, cloud.xyz.shape[0])
    nbytes = height * width * POINT_STEP
    if out is not None and out.dtype == np.uint8 and out.ndim == 1 and out.flags.c_contiguous and out.size >= nbytes:
        data = out[:nbytes]
    else:
        data = np.empty(nbytes, dtype=np.uint8)
    n = height * width
    xyz = np.asarray(cloud.xyz, np.float32).reshape(n, 3)
    finite = pack_points(
        xyz.view(np.uint32),
        cloud.rgb.reshape(n, 3),
        cloud.label.ravel(),
        cloud.instance.ravel(),
        data.view("<u4").reshape(n, 6),
    )
    return PackedCloud(
        data=data,
        width=width,
        height=height,
        point_step=POINT_STEP,
        row_step=width * POINT_STEP,
        is_dense=finite,
        fields=POINT_FIELDS,
    )


def unpack_xyz(
    data: bytes | np.ndarray,
    fields: Sequence[tuple[str, int, int, int]],
    point_step: int,
    width: int,
    height: int,
    is_bigendian: bool = False,
) -> np.ndarray:
    """(N, 3) float32 x, y, z of a PointCloud2 payload with any layout (float32 or float64 coordinates)."""
    fields = [PointFieldSpec(*f) for f in fields]
    for f in fields:
        if f.datatype not in NUMPY_TYPES:
            raise ValueError(f"PointCloud2 field {f.name!r}: unknown datatype {f.datatype} (expected 1..8)")
        end = f.offset + np.dtype(NUMPY_TYPES[f.datatype]).itemsize * f.count
        if f.offset < 0 or end > point_step:
            raise ValueError(
                f"PointCloud2 field {f.name!r} spans bytes {f.offset}..{end} but point_step is {point_step}"
            )
    by_name = {f.name: f for f in fields}
    missing = [name for name in "xyz" if name not in by_name]
    if missing:
        raise ValueError(f"PointCloud2 lacks field(s) {missing}; it has {[f.name for f in fields]}")
    for name in "xyz":
        if by_name[name].datatype not in (FLOAT32, FLOAT64):
            raise ValueError(
                f"PointCloud2 field {name!r}: expected FLOAT32 or FLOAT64, got datatype {by_name[name].datatype}"
            )
    buffer = np.frombuffer(data, dtype=np.uint8)
    expected = point_step * width * height
    if buffer.size != expected:
        raise ValueError(
            f"PointCloud2 data holds {buffer.size} bytes, expected point_step * width * height = "
            f"{point_step} * {width} * {height} = {expected}"
        )
    order = ">" if is_bigendian else "<"
    layout = np.dtype(
        {
            "names": list("xyz"),
            "formats": [order + NUMPY_TYPES[by_name[name].datatype] for name in "xyz"],
            "offsets": [by_name[name].offset for name in "xyz"],
            "itemsize": point_step,
        }
    )
    points = buffer.view(layout)
    xyz = np.empty((points.size, 3), dtype=np.float32)
    xyz[:, 0], xyz[:, 1], xyz[:, 2] = points["x"], points["y"], points["z"]
    return xyz
