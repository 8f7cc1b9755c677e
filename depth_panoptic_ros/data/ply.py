"""Panoptic clouds as binary little-endian PLY (x y z float, red green blue uchar, label instance uint).

The layout opens in CloudCompare/MeshLab/Open3D with color, and label/instance arrive as scalar fields.
read_ply reads exactly this layout back (it is not a general PLY reader).
"""

from __future__ import annotations

import re

import numpy as np

from depth_panoptic_ros.data.kitti import PathLike
from depth_panoptic_ros.geometry.backproject import PanopticCloud

_VERTEX = np.dtype(
    [
        ("x", "<f4"),
        ("y", "<f4"),
        ("z", "<f4"),
        ("red", "u1"),
        ("green", "u1"),
        ("blue", "u1"),
        ("label", "<u4"),
        ("instance", "<u4"),
    ]
)
_PLY_TYPES = {"<f4": "float", "|u1": "uchar", "<u4": "uint"}
_PROPERTIES = [f"property {_PLY_TYPES[_VERTEX[name].str]} {name}" for name in _VERTEX.names]


def _header(count: int) -> bytes:
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {count}", *_PROPERTIES, "end_header"]
    return ("\n".join(lines) + "\n").encode("ascii")


def write_ply(path: PathLike, cloud: PanopticCloud) -> None:
    """Writes the cloud's valid points (an organized cloud's NaN points are left out)."""
    xyz = cloud.xyz.reshape(-1, 3)
    valid = np.isfinite(xyz).all(axis=1)
    vertices = np.empty(int(valid.sum()), dtype=_VERTEX)
    vertices["x"], vertices["y"], vertices["z"] = xyz[valid].T
    rgb = cloud.rgb.reshape(-1, 3)[valid]
    vertices["red"], vertices["green"], vertices["blue"] = rgb.T
    vertices["label"] = cloud.label.ravel()[valid]
    vertices["instance"] = cloud.instance.ravel()[valid]
    with open(path, "wb") as file:
        file.write(_header(vertices.size))
        file.write(vertices.tobytes())


def read_ply(path: PathLike) -> PanopticCloud:
    """A flat PanopticCloud from a PLY written by write_ply."""
    with open(path, "rb") as file:
        raw = file.read()
    header, marker, body = raw.partition(b"end_header\n")
    count = re.search(rb"^element vertex (\d+)$", header, re.MULTILINE)
    if not marker or count is None or header + marker != _header(int(count[1])):
        raise ValueError(f"{path}: not a PLY in write_ply's layout (binary_little_endian, {_PROPERTIES})")
    if len(body) != int(count[1]) * _VERTEX.itemsize:
        raise ValueError(
            f"{path}: expected {int(count[1])} vertices of {_VERTEX.itemsize} bytes, got {len(body)} bytes"
        )
    vertices = np.frombuffer(body, dtype=_VERTEX)
    return PanopticCloud(
        xyz=np.stack([vertices["x"], vertices["y"], vertices["z"]], axis=1),
        rgb=np.stack([vertices["red"], vertices["green"], vertices["blue"]], axis=1),
        label=vertices["label"].copy(),
        instance=vertices["instance"].copy(),
    )
