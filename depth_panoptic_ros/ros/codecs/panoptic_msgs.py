"""The package's own messages (class table, per-instance depth) and RViz labels, from the core's products."""

from __future__ import annotations

from dataclasses import fields

from geometry_msgs.msg import Point
from rclpy.duration import Duration
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.msg import ClassInfo as ClassInfoMsg
from depth_panoptic_ros.msg import ClassTable as ClassTableMsg
from depth_panoptic_ros.msg import InstanceDepth, InstanceDepthArray
from depth_panoptic_ros.products.instance_depth import InstanceDepthTable

MARKER_NAMESPACE = "instance_depth"


def class_table_to_msg(class_table: ClassTable, header: Header) -> ClassTableMsg:
    """The label space of panoptic/ids, published once with transient-local durability."""
    return ClassTableMsg(
        header=header,
        label_divisor=class_table.label_divisor,
        classes=[
            ClassInfoMsg(id=c.id, name=c.name, is_thing=c.is_thing, r=c.color[0], g=c.color[1], b=c.color[2])
            for c in class_table.classes
        ],
    )


def instances_to_msg(table: InstanceDepthTable, class_table: ClassTable, header: Header) -> InstanceDepthArray:
    """One InstanceDepth per segment of ``table``; NaN depth fields where a segment has no valid depth."""
    col = {f.name: getattr(table, f.name).tolist() for f in fields(table)}
    instances = [
        InstanceDepth(
            panoptic_id=col["panoptic_id"][i],
            instance_id=col["instance_id"][i],
            class_id=col["class_id"][i],
            class_name=class_table.names[col["class_index"][i]],
            is_thing=col["is_thing"][i],
            score=col["score"][i],
            pixel_count=col["pixel_count"][i],
            valid_depth_count=col["valid_count"][i],
            bbox=_region_of_interest(*col["bbox"][i]),
            depth_mean=col["depth_mean"][i],
            depth_median=col["depth_median"][i],
            depth_min=col["depth_min"][i],
            depth_p10=col["depth_p10"][i],
            centroid=Point(x=col["centroid"][i][0], y=col["centroid"][i][1], z=col["centroid"][i][2]),
        )
        for i in range(len(table))
    ]
    return InstanceDepthArray(header=header, instances=instances)


def _region_of_interest(x0: int, y0: int, x1: int, y1: int) -> RegionOfInterest:
    """The half-open box (x0, y0, x1, y1) as a RegionOfInterest."""
    return RegionOfInterest(x_offset=x0, y_offset=y0, width=x1 - x0, height=y1 - y0)


def markers_from_instances(
    table: InstanceDepthTable,
    class_table: ClassTable,
    header: Header,
    lifetime_s: float,
    text_height_m: float = 0.5,
) -> MarkerArray:
    """ "car 12.3 m" (median depth) at the centroid of every thing with valid depth, in its class color.

    A DELETEALL comes first so that labels of instances gone from this frame vanish instead of lingering.
    """
    keep = table.is_thing & (table.valid_count > 0)
    colors = class_table.colors[table.class_index[keep]] / 255.0
    lifetime = Duration(seconds=lifetime_s).to_msg()
    markers = [Marker(header=header, ns=MARKER_NAMESPACE, action=Marker.DELETEALL)]
    for panoptic_id, class_index, depth, (x, y, z), (r, g, b) in zip(
        table.panoptic_id[keep].tolist(),
        table.class_index[keep].tolist(),
        table.depth_median[keep].tolist(),
        table.centroid[keep].tolist(),
        colors.tolist(),
        strict=True,
    ):
        marker = Marker(
            header=header,
            ns=MARKER_NAMESPACE,
            id=panoptic_id,
            type=Marker.TEXT_VIEW_FACING,
            action=Marker.ADD,
            text=f"{class_table.names[class_index]} {depth:.1f} m",
            color=ColorRGBA(r=r, g=g, b=b, a=1.0),
            lifetime=lifetime,
        )
        marker.pose.position = Point(x=x, y=y, z=z)
        marker.scale.z = text_height_m
        markers.append(marker)
    return MarkerArray(markers=markers)
