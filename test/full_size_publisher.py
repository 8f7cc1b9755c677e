"""A driver in its own process for the QoS tests: KITTI-size sets (1242x375 bgr8 image, CameraInfo, a 120k-point
cloud) under one QoS reliability, with whatever Fast DDS set-up its environment gives it.

  python test/full_size_publisher.py NAMESPACE reliable|best_effort SETS RATE_HZ [POINTS]

Waits until the node under test subscribes to every topic (with a reliable publisher: until its subscriptions
are reliable too, i.e. they adapted), publishes the sets stamped with wall time, then waits until a reliable
publisher's samples are acknowledged. Prints one line per stage for the test's log.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

WIDTH, HEIGHT, POINTS = 1242, 375, 120_000
SUBSCRIBE_TIMEOUT_S = 60.0
ACK_TIMEOUT_S = 60.0


def main() -> int:
    namespace, reliability, sets, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    points = int(sys.argv[5]) if len(sys.argv) > 5 else POINTS
    policy = QoSReliabilityPolicy.RELIABLE if reliability == "reliable" else QoSReliabilityPolicy.BEST_EFFORT
    rclpy.init()
    node = rclpy.create_node("full_size_driver", namespace=namespace)
    qos = QoSProfile(depth=5, reliability=policy)
    rng = np.random.default_rng(0)
    image = Image(height=HEIGHT, width=WIDTH, encoding="bgr8", step=WIDTH * 3)
    image.header.frame_id = "camera"
    image.data = rng.integers(0, 255, HEIGHT * WIDTH * 3, dtype=np.uint8).tobytes()
    info = CameraInfo(height=HEIGHT, width=WIDTH, distortion_model="plumb_bob", d=[0.0] * 5)
    info.header.frame_id = "camera"
    info.k = [721.5, 0.0, 609.6, 0.0, 721.5, 172.9, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [721.5, 0.0, 609.6, 0.0, 0.0, 721.5, 172.9, 0.0, 0.0, 0.0, 1.0, 0.0]
    xyz = np.column_stack([rng.uniform(-20, 20, points), rng.uniform(-2, 2, points), rng.uniform(3, 60, points)])
    cloud = PointCloud2(height=1, width=points, point_step=16, row_step=16 * points, is_dense=True)
    cloud.header.frame_id = "lidar"
    cloud.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
    cloud.fields.append(PointField(name="intensity", offset=12, datatype=PointField.FLOAT32, count=1))
    cloud.data = np.column_stack([xyz, np.ones(points)]).astype(np.float32).tobytes()
    publishers = {
        "image": node.create_publisher(Image, "image", qos),
        "camera_info": node.create_publisher(CameraInfo, "camera_info", qos),
        "lidar": node.create_publisher(PointCloud2, "lidar", qos),
    }

    def ready() -> bool:
        for topic, publisher in publishers.items():
            subscriptions = node.get_subscriptions_info_by_topic(node.resolve_topic_name(topic))
            if publisher.get_subscription_count() == 0 or not subscriptions:
                return False
            if any(s.qos_profile.reliability != policy for s in subscriptions):
                return False
        return True

    deadline = time.monotonic() + SUBSCRIBE_TIMEOUT_S
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"subscribed: {ready()}", flush=True)
    time.sleep(1.0)  # discovery of the remaining endpoints
    for _ in range(sets):
        stamp = node.get_clock().now().to_msg()
        for msg in (image, info, cloud):
            msg.header.stamp = stamp
        for topic, msg in (("camera_info", info), ("image", image), ("lidar", cloud)):
            publishers[topic].publish(msg)
        time.sleep(1.0 / rate)
    print(f"published {sets} sets", flush=True)
    # A reliable writer that leaves before its readers acknowledged takes the unrepaired fragments with it: on a
    # busy machine the default transports repaired a 1.1 MB image for seconds (6 of 8 arrived). Best effort: at once.
    acked = all(p.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S)) for p in publishers.values())
    print(f"acknowledged: {acked}", flush=True)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
