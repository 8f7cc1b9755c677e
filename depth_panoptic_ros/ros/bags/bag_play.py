"""`bag play`: a rosbag2 published to ROS 2 with its recorded timing, for machines without the ros2 CLI.

Messages go out as their recorded CDR bytes (no decoding), at their record times scaled by the rate, like
`ros2 bag play`. QoS also follows it: reliable, volatile, keep last 10 (reliable publishers serve reliable and
best-effort subscribers alike), except that a topic recorded with transient-local durability (/tf_static, the
class table) is re-offered transient local so that late subscribers still get it. With ``clock`` the playback
time goes out on /clock (reliable, keep last 1) between messages and right before each, for nodes that run
with use_sim_time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from rosbags.interfaces import QosDurability
from rosgraph_msgs.msg import Clock

from depth_panoptic_ros.ros.bags.bag_io import (
    TF_STATIC,
    describe_topics,
    message_class,
    open_bag,
    topic_types,
)
from depth_panoptic_ros.ros.bags.bag_recovery import truncations
from depth_panoptic_ros.ros.runtime.qos import transient_local_qos

CLOCK_TOPIC = "/clock"
DEFAULT_CLOCK_HZ = 40.0  # ros2 bag play --clock's default
PLAY_QUEUE_DEPTH = 10
ACK_TIMEOUT_S = 10.0  # at the end, wait this long at most for reliable subscribers to acknowledge the last messages
NS_PER_S = 1_000_000_000

_log = logging.getLogger(__name__)


def playback_qos() -> QoSProfile:
    return QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST,
        depth=PLAY_QUEUE_DEPTH,
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.VOLATILE,
    )


class BagPlayer:
    """Publishers for the chosen topics of a bag (all by default), created on ``node``.

    Topics whose message package is not installed (e.g. tf2_msgs among the ROS 2 wheels) cannot be published
    from Python; they are left out with a warning and listed in ``skipped``.
    """

    def __init__(self, node: Node, path: str | Path, topics: Sequence[str] | None = None) -> None:
        self.node = node
        self.path = Path(path)
        with open_bag(path) as reader:
            types = topic_types(reader)
            latched = {
                c.topic
                for c in reader.connections
                if c.topic == TF_STATIC
                or any(q.durability == QosDurability.TRANSIENT_LOCAL for q in c.ext.offered_qos_profiles)
            }
        chosen = list(topics or types)
        unknown = [t for t in chosen if t not in types]
        if unknown:
            raise ValueError(f"topic(s) {unknown} not in bag {path}; it holds: {describe_topics(types)}")
        self.publishers = {}
        self.skipped: list[str] = []
        for topic in chosen:
            cls = message_class(types[topic])
            if cls is None:
                self.skipped.append(topic)
                _log.warning("%s: message type %s is not installed here; not played", topic, types[topic])
                continue
            qos = transient_local_qos() if topic in latched else playback_qos()
            self.publishers[topic] = node.create_publisher(cls, topic, qos)
        if not self.publishers:
            raise ValueError(f"none of the topics {chosen} of bag {path} can be published here")
        self._clock = None  # created on the first play with clock: a /clock publisher changes other nodes' time
        self.cut_short: list[str] = []  # what a recording cut short lost, as of the last pass

    def wait_for_subscribers(self, timeout_s: float, topics: Iterable[str] | None = None) -> list[str]:
        """Waits until each topic (default: all played) has a subscriber, at most ``timeout_s``; returns those
        still without one. Volatile messages published before discovery completes are lost to a subscriber."""
        topics = list(self.publishers if topics is None else topics)
        deadline = time.monotonic() + timeout_s
        while True:
            missing = [t for t in topics if self.publishers[t].get_subscription_count() == 0]
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.05)

    def play(
        self,
        *,
        rate: float = 1.0,
        loop: bool = False,
        clock: bool = False,
        clock_hz: float = DEFAULT_CLOCK_HZ,
        on_publish: Callable[[str, int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Publishes the bag (again and again with ``loop``) until its end or ``stop``; returns the messages sent.

        ``on_publish(topic, record_time_ns)`` runs right after each message is published.
        """
        if not rate > 0:
            raise ValueError(f"rate: expected > 0, got {rate}")
        if not clock_hz > 0:
            raise ValueError(f"clock rate: expected > 0 Hz, got {clock_hz}")
        if clock and self._clock is None:
            self._clock = self.node.create_publisher(Clock, CLOCK_TOPIC, QoSProfile(depth=1))
        stop = stop or threading.Event()
        sent = 0
        while not stop.is_set():
            sent += self._play_once(rate, clock, 1.0 / clock_hz, on_publish, stop)
            if not loop:
                break
        return sent

    def _play_once(
        self,
        rate: float,
        clock: bool,
        clock_period_s: float,
        on_publish: Callable[[str, int], None] | None,
        stop: threading.Event,
    ) -> int:
        sent = 0
        start_ns = wall_start = None
        with open_bag(self.path) as reader:
            connections = [c for c in reader.connections if c.topic in self.publishers]
            for connection, time_ns, raw in reader.messages(connections=connections):
                if start_ns is None:
                    start_ns, wall_start = time_ns, time.monotonic()
                due = wall_start + (time_ns - start_ns) / NS_PER_S / rate
                while (left := due - time.monotonic()) > 0:
                    if stop.wait(min(left, clock_period_s)):
                        return sent
                    if clock:
                        elapsed = time.monotonic() - wall_start
                        self._publish_clock(start_ns + min(round(elapsed * rate * NS_PER_S), time_ns - start_ns))
                if clock:
                    self._publish_clock(time_ns)
                self.publishers[connection.topic].publish(bytes(raw))
                sent += 1
                if on_publish is not None:
                    on_publish(connection.topic, time_ns)
            self.cut_short = [t.describe() for t in truncations(reader)]
        return sent

    def wait_for_acks(self, timeout_s: float) -> list[str]:
        """Waits until the reliable subscribers acknowledged every message played, at most ``timeout_s`` in all;
        returns the topics still unacknowledged. A reliable publisher that leaves sooner takes the fragments it
        has not yet repaired with it: the last large messages of a replay, on a busy machine."""
        deadline = time.monotonic() + timeout_s
        return [
            topic
            for topic, publisher in self.publishers.items()
            if not publisher.wait_for_all_acked(Duration(seconds=max(deadline - time.monotonic(), 0.0)))
        ]

    def _publish_clock(self, time_ns: int) -> None:
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(time_ns, NS_PER_S)
        self._clock.publish(msg)


def play_bag(
    path: str | Path,
    topics: Sequence[str] | None = None,
    *,
    rate: float = 1.0,
    loop: bool = False,
    clock: bool = False,
    wait_for_subscribers_s: float = 0.0,
    ack_timeout_s: float = ACK_TIMEOUT_S,
    report: Callable[[str], None] = print,
) -> tuple[int, list[str]]:
    """Plays a bag from a node of its own in a fresh rclpy session (the `bag play` front end, which stays
    ROS-free); returns the messages sent and the topics left out. Before leaving it waits up to
    ``ack_timeout_s`` for the subscribers to acknowledge the last messages. ``report`` gets the no-subscriber
    notice, the topics left unacknowledged and what a recording cut short lost."""
    import rclpy

    rclpy.init()
    node = rclpy.create_node("depth_panoptic_bag_player")
    try:
        player = BagPlayer(node, path, topics)
        if wait_for_subscribers_s > 0:
            alone = player.wait_for_subscribers(wait_for_subscribers_s)
            if alone:
                report(f"no subscriber after {wait_for_subscribers_s:g} s on: {', '.join(alone)}; playing anyway")
        sent = player.play(rate=rate, loop=loop, clock=clock)
        unacknowledged = player.wait_for_acks(ack_timeout_s)
        if unacknowledged:
            report(
                f"not acknowledged within {ack_timeout_s:g} s by their reliable subscribers: "
                f"{', '.join(unacknowledged)}; the last messages may not have reached them"
            )
        for loss in player.cut_short:
            report(f"{path}: {loss}; everything before the cut was played")
        return sent, player.skipped
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
