"""The package's messages are real ROS 2 types that cross a process boundary intact."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
msg = pytest.importorskip("depth_panoptic_ros.msg")

PUBLISHER = textwrap.dedent(
    """
    import math, time, rclpy
    from rclpy.qos import QoSProfile, DurabilityPolicy, ReliabilityPolicy
    from depth_panoptic_ros.msg import ClassInfo, ClassTable, InstanceDepth, InstanceDepthArray

    rclpy.init()
    node = rclpy.create_node("message_test_publisher")
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
    pub_classes = node.create_publisher(ClassTable, "classes", latched)
    pub_instances = node.create_publisher(InstanceDepthArray, "instances", 10)
    table = ClassTable(label_divisor=1000, classes=[
        ClassInfo(id=7, name="road", is_thing=False, r=128, g=64, b=128),
        ClassInfo(id=26, name="car", is_thing=True, r=0, g=0, b=142)])
    table.header.frame_id = "camera_optical_frame"
    pub_classes.publish(table)  # once: a late subscriber still gets it (transient local)
    car = InstanceDepth(panoptic_id=26003, instance_id=3, class_id=26, class_name="car", is_thing=True,
                        score=0.75, pixel_count=1200, valid_depth_count=900, depth_mean=12.5, depth_median=12.25,
                        depth_min=11.0, depth_p10=11.5)
    car.bbox.x_offset, car.bbox.y_offset, car.bbox.width, car.bbox.height = 10, 20, 30, 40
    car.centroid.x, car.centroid.y, car.centroid.z = -1.5, 0.25, 12.5
    road = InstanceDepth(panoptic_id=7000, class_id=7, class_name="road", depth_mean=math.nan,
                         depth_median=math.nan, depth_min=math.nan, depth_p10=math.nan)
    array = InstanceDepthArray(instances=[car, road])
    array.header.stamp.sec, array.header.stamp.nanosec = 1234, 5678
    array.header.frame_id = "camera_optical_frame"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pub_instances.publish(array)
        rclpy.spin_once(node, timeout_sec=0.1)
    """
)


def test_messages_round_trip_between_processes() -> None:
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    rclpy.init()
    node = rclpy.create_node("message_test_subscriber")
    got: dict[str, object] = {}
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(msg.ClassTable, "classes", lambda m: got.setdefault("classes", m), latched)
    node.create_subscription(msg.InstanceDepthArray, "instances", lambda m: got.setdefault("instances", m), 10)
    peer = subprocess.Popen([sys.executable, "-c", PUBLISHER])
    try:
        deadline = time.monotonic() + 30
        while len(got) < 2 and time.monotonic() < deadline and peer.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        peer.kill()
        peer.wait()
        node.destroy_node()
        rclpy.shutdown()

    assert set(got) == {"classes", "instances"}, f"received only {sorted(got)}"
    table = got["classes"]
    assert table.label_divisor == 1000 and table.header.frame_id == "camera_optical_frame"
    assert [(c.id, c.name, c.is_thing, (c.r, c.g, c.b)) for c in table.classes] == [
        (7, "road", False, (128, 64, 128)),
        (26, "car", True, (0, 0, 142)),
    ]
    array = got["instances"]
    assert (array.header.stamp.sec, array.header.stamp.nanosec) == (1234, 5678)
    car, road = array.instances
    assert (car.panoptic_id, car.instance_id, car.class_id, car.class_name) == (26003, 3, 26, "car")
    assert (car.pixel_count, car.valid_depth_count, car.score) == (1200, 900, 0.75)
    assert (car.bbox.x_offset, car.bbox.y_offset, car.bbox.width, car.bbox.height) == (10, 20, 30, 40)
    assert (car.depth_mean, car.depth_median, car.depth_min, car.depth_p10) == (12.5, 12.25, 11.0, 11.5)
    assert (car.centroid.x, car.centroid.y, car.centroid.z) == (-1.5, 0.25, 12.5)
    assert road.class_name == "road" and not road.is_thing
    assert all(math.isnan(v) for v in (road.depth_mean, road.depth_median, road.depth_min, road.depth_p10))
