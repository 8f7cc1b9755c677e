"""Pipeline Products -> the per-frame output messages, in one place so that the node and `bag process` publish
the same topics with the same contents.

Every message carries the input image's header (REP 103: outputs keep the input stamp and optical frame),
except the bird's-eye grid topics, which keep its stamp in the grid's ground frame.
Topics whose product does not exist (no model: no panoptic ids, instances or labels) are left out, so a
depth-only pipeline still fills panoptic/depth, its camera_info and panoptic/points.
"""

from __future__ import annotations

import array
from collections.abc import Collection, Iterable
from typing import Any

import numpy as np
from geometry_msgs.msg import Pose
from nav_msgs.msg import MapMetaData, OccupancyGrid
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.frame import SensorFrame
from depth_panoptic_ros.geometry.pointcloud2 import pack_cloud
from depth_panoptic_ros.msg import ClassTable as ClassTableMsg
from depth_panoptic_ros.msg import InstanceDepthArray
from depth_panoptic_ros.pipeline import Products
from depth_panoptic_ros.products.bev_grid import BevGrid
from depth_panoptic_ros.products.depth_colormap import depth_colormap_panoptic
from depth_panoptic_ros.products.palette import overlay_panoptic
from depth_panoptic_ros.ros.codecs.camera_info import camera_info_from_model
from depth_panoptic_ros.ros.codecs.cloud_codec import cloud_to_msg
from depth_panoptic_ros.ros.codecs.image_codec import depth_to_msg, image_to_msg
from depth_panoptic_ros.ros.codecs.panoptic_msgs import instances_to_msg, markers_from_instances

PANOPTIC_IDS = "panoptic/ids"
PANOPTIC_COLOR = "panoptic/color"
DEPTH_COLOR = "panoptic/depth_color"
DEPTH = "panoptic/depth"
DEPTH_CAMERA_INFO = "panoptic/depth/camera_info"
INSTANCES = "panoptic/instances"
POINTS = "panoptic/points"
MARKERS = "panoptic/markers"
OCCUPANCY = "panoptic/occupancy"
BEV = "panoptic/bev"
BEV_INFO = "panoptic/bev/info"
DEFAULT_GRID_FRAME = "base_link"
CLASSES = "panoptic/classes"  # published once (transient local), not per frame: see class_table_to_msg

# Per-frame output topic -> (message type, pipeline outputs it is made from).
FRAME_TOPICS: dict[str, tuple[type, frozenset[str]]] = {
    PANOPTIC_IDS: (Image, frozenset({"panoptic"})),
    PANOPTIC_COLOR: (Image, frozenset({"panoptic"})),
    DEPTH_COLOR: (Image, frozenset({"panoptic", "instances"})),
    DEPTH: (Image, frozenset({"depth"})),
    DEPTH_CAMERA_INFO: (CameraInfo, frozenset({"depth"})),
    INSTANCES: (InstanceDepthArray, frozenset({"panoptic", "instances"})),
    POINTS: (PointCloud2, frozenset({"cloud"})),
    MARKERS: (MarkerArray, frozenset({"panoptic", "instances"})),
    OCCUPANCY: (OccupancyGrid, frozenset({"grid"})),
    BEV: (Image, frozenset({"grid"})),
    BEV_INFO: (MapMetaData, frozenset({"grid"})),
}
GRID_TOPICS = (OCCUPANCY, BEV, BEV_INFO)
CLASSES_TYPE = ClassTableMsg


def _check_topics(wanted: Iterable[str]) -> set[str]:
    wanted = set(wanted)
    unknown = wanted - FRAME_TOPICS.keys()
    if unknown:
        raise ValueError(f"unknown output topic(s) {sorted(unknown)}; per-frame outputs are {sorted(FRAME_TOPICS)}")
    return wanted


def pipeline_outputs(wanted: Iterable[str]) -> set[str]:
    """The Pipeline.run outputs that the wanted topics need (so that nothing unwanted is computed)."""
    needed: set[str] = set()
    for topic in _check_topics(wanted):
        needed |= FRAME_TOPICS[topic][1]
    return needed


def build_output_messages(
    products: Products,
    frame: SensorFrame,
    header: Header,
    class_table: ClassTable | None,
    wanted: Collection[str],
    *,
    marker_lifetime_s: float = 0.0,
    grid_frame: str = DEFAULT_GRID_FRAME,
) -> dict[str, Any]:
    """{topic: message} for each wanted per-frame topic whose product exists, stamped with ``header``.

    ``marker_lifetime_s`` = 0 keeps labels until the next frame's DELETEALL replaces them (RViz semantics).
    ``grid_frame``: the ground frame the grid was computed in (its messages' frame_id).
    """
    wanted = _check_topics(wanted)
    out: dict[str, Any] = {}
    if products.grid is not None:
        out |= grid_messages(products.grid, Header(stamp=header.stamp, frame_id=grid_frame), wanted)
    if DEPTH in wanted:
        out[DEPTH] = depth_to_msg(products.depth, header)
    if DEPTH_CAMERA_INFO in wanted:
        out[DEPTH_CAMERA_INFO] = camera_info_from_model(frame.camera, header)
    if POINTS in wanted and products.cloud is not None:
        out[POINTS] = cloud_to_msg(pack_cloud(products.cloud), header)
    if products.panoptic is None or class_table is None:
        return out
    ids = products.panoptic.ids
    if PANOPTIC_IDS in wanted:
        out[PANOPTIC_IDS] = image_to_msg(ids.astype("int32", copy=False), "32SC1", header)
    if PANOPTIC_COLOR in wanted:
        runs = products.panoptic.runs  # shared with the instance depth table
        color = overlay_panoptic(frame.rgb, runs, class_table)
        out[PANOPTIC_COLOR] = image_to_msg(color, "rgb8", header)
    table = products.instances
    if table is None:
        return out
    if DEPTH_COLOR in wanted:
        image = depth_colormap_panoptic(products.panoptic.runs, table, class_table, rgb=frame.rgb)
        out[DEPTH_COLOR] = image_to_msg(image, "rgb8", header)
    if INSTANCES in wanted:
        out[INSTANCES] = instances_to_msg(table, class_table, header)
    if MARKERS in wanted:
        out[MARKERS] = markers_from_instances(table, class_table, header, marker_lifetime_s)
    return out


def grid_messages(grid: BevGrid, header: Header, wanted: Collection[str]) -> dict[str, Any]:
    """panoptic/occupancy, panoptic/bev (32SC1 ids, same cells) and panoptic/bev/info (where the cells lie)."""
    rows, cols = grid.occupancy.shape
    origin = Pose()
    origin.position.x, origin.position.y = (float(v) for v in grid.origin)
    info = MapMetaData(
        map_load_time=header.stamp, resolution=float(grid.resolution), width=cols, height=rows, origin=origin
    )
    out: dict[str, Any] = {}
    if OCCUPANCY in wanted:
        out[OCCUPANCY] = OccupancyGrid(header=header, info=info)
        data = array.array("b")  # int8[]: rclpy keeps an array.array('b') as is (see byte_buffers)
        data.frombytes(np.ascontiguousarray(grid.occupancy, dtype=np.int8).tobytes())
        out[OCCUPANCY].data = data
    if BEV in wanted:
        out[BEV] = image_to_msg(grid.ids, "32SC1", header)
    if BEV_INFO in wanted:
        out[BEV_INFO] = info
    return out
