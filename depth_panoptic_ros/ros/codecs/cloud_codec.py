"""sensor_msgs/PointCloud2 <-> the plain-numpy layouts of geometry.pointcloud2 (which validates them)."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from depth_panoptic_ros.geometry.pointcloud2 import PackedCloud, unpack_xyz
from depth_panoptic_ros.ros.codecs.byte_buffers import message_bytes, to_byte_array
from depth_panoptic_ros.ros.codecs.validation import DEFAULT_LIMITS, InputLimits, check_cloud


def cloud_to_xyz(msg: PointCloud2, limits: InputLimits = DEFAULT_LIMITS) -> np.ndarray:
    """(N, 3) float32 x, y, z in the cloud's frame, whatever the driver's point layout (validated first).

    Rows padded beyond width * point_step (row_step larger, data sized accordingly) are unpadded first.
    """
    check_cloud(msg, limits)
    data = message_bytes(msg.data)
    width, height, point_step, row_step = int(msg.width), int(msg.height), int(msg.point_step), int(msg.row_step)
    row_bytes = width * point_step
    if row_step > row_bytes:
        data = np.ascontiguousarray(data.reshape(height, row_step)[:, :row_bytes]).ravel()
    fields = [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]
    return unpack_xyz(data, fields, point_step, width, height, msg.is_bigendian)


def cloud_to_msg(cloud: PackedCloud, header: Header) -> PointCloud2:
    """A PointCloud2 of a packed cloud (one copy of its bytes), stamped with ``header``."""
    msg = PointCloud2(
        header=header,
        height=cloud.height,
        width=cloud.width,
        fields=[PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in cloud.fields],
        is_bigendian=False,  # pack_cloud writes little-endian explicitly
        point_step=cloud.point_step,
        row_step=cloud.row_step,
        is_dense=cloud.is_dense,
    )
    msg.data = to_byte_array(cloud.data)  # after construction: one copy fewer (see byte_buffers)
    return msg
