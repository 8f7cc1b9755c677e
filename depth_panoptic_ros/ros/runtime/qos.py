"""Quality of service of the node's endpoints (REP 2003), inputs that adapt to their publishers, and a loud
warning for a QoS mismatch.

Input reliability follows the publishers as rosbag2's recorder does: reliable when every publisher of the topic
is reliable (bag players, drivers following REP 2003: full-size samples are then resent instead of lost), best
effort otherwise (a best-effort publisher cannot feed a reliable subscription), re-evaluated as publishers come
and go. ``qos_overrides.<topic>.subscription.reliability`` set to reliable or best_effort fixes it instead.

A best-effort publisher and a reliable subscription (typical with ``ros2 bag play`` or a driver using sensor
QoS) match silently and deliver nothing; the warning names both sides and the parameter that fixes it.
Profiles are built fresh on every call because rclpy applies parameter overrides to the profile object it is
given, which would otherwise leak into rclpy's shared ``qos_profile_sensor_data``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.event_handler import QoSRequestedIncompatibleQoSInfo, SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import (
    QoSDurabilityPolicy,
    QoSHistoryPolicy,
    QoSPolicyKind,
    QoSProfile,
    QoSReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import QoSOverridingOptions

SENSOR_QUEUE_DEPTH = qos_profile_sensor_data.depth  # 5
ADAPTIVE = "auto"
RELIABILITY_SETTINGS = (ADAPTIVE, "reliable", "best_effort")


def sensor_qos(depth: int = SENSOR_QUEUE_DEPTH) -> QoSProfile:
    """Sensor-data QoS for input subscriptions: best effort, keep last ``depth``, volatile."""
    return QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=QoSReliabilityPolicy.BEST_EFFORT,
        durability=QoSDurabilityPolicy.VOLATILE,
    )


def transient_local_qos() -> QoSProfile:
    """Reliable, transient local, depth 1: the class table, published once, reaches late subscribers too."""
    return QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
    )


def adapted_reliability(offered: Iterable[QoSReliabilityPolicy]) -> QoSReliabilityPolicy:
    """rosbag2's rule: reliable when there are publishers and every one is reliable, else best effort."""
    offered = list(offered)
    if offered and all(policy == QoSReliabilityPolicy.RELIABLE for policy in offered):
        return QoSReliabilityPolicy.RELIABLE
    return QoSReliabilityPolicy.BEST_EFFORT


class AdaptiveSubscription:
    """A sensor-data subscription whose reliability follows its publishers (see the module docstring).

    The reliability override parameter is declared (and checked) at construction, with the default ``auto``; the
    other policies keep rclpy's ``qos_overrides`` parameters. The subscription itself exists between
    ``subscribe()`` and ``unsubscribe()`` (a lifecycle node's activation). ``update()`` re-creates it when the
    publishers call for another reliability; it returns the new policy then, else None. With ``raw`` the callback
    gets the serialized message (bytes).
    """

    def __init__(
        self, node: Node, msg_type: type, topic: str, callback: Callable[[Any], None], *, raw: bool = False
    ) -> None:
        self.node, self.msg_type, self.topic, self.callback, self.raw = node, msg_type, topic, callback, raw
        name = f"qos_overrides.{topic}.subscription.reliability"
        descriptor = ParameterDescriptor(
            description=f"reliability of the subscription {topic}: auto (follow the publishers), reliable or "
            "best_effort",
            read_only=True,
        )
        setting = str(node.declare_parameter(name, ADAPTIVE, descriptor).value).lower()
        if setting not in RELIABILITY_SETTINGS:
            raise ValueError(f"{name}: expected one of {', '.join(RELIABILITY_SETTINGS)}, got {setting!r}")
        self.fixed = None if setting == ADAPTIVE else QoSReliabilityPolicy[setting.upper()]
        self.reliability = self.fixed or QoSReliabilityPolicy.BEST_EFFORT
        self.subscription: Any = None

    def _wanted(self) -> QoSReliabilityPolicy:
        infos = self.node.get_publishers_info_by_topic(self.topic)
        return adapted_reliability(info.qos_profile.reliability for info in infos)

    def subscribe(self) -> None:
        self._create(self.fixed or self._wanted())

    def _create(self, reliability: QoSReliabilityPolicy) -> None:
        self.reliability = reliability
        qos = sensor_qos()
        qos.reliability = self.reliability
        self.subscription = self.node.create_subscription(
            self.msg_type,
            self.topic,
            self.callback,
            qos,
            qos_overriding_options=input_qos_overrides(),
            event_callbacks=incompatible_qos_callbacks(self.node, self.topic),
            raw=self.raw,
        )

    def unsubscribe(self) -> None:
        if self.subscription is not None:
            self.node.destroy_subscription(self.subscription)
            self.subscription = None

    def update(self) -> QoSReliabilityPolicy | None:
        """Reads the publishers once (a graph query) and re-creates the subscription with what they call for."""
        if self.fixed is not None or self.subscription is None:
            return None
        wanted = self._wanted()
        if wanted == self.reliability:
            return None
        self.unsubscribe()
        self._create(wanted)
        return wanted

    def publisher_count(self) -> int:
        return 0 if self.subscription is None else self.subscription.get_publisher_count()


def qos_overrides() -> QoSOverridingOptions:
    """Declares read-only ``qos_overrides.<topic>.<subscription|publisher>.{history,depth,reliability,durability}``
    parameters for the endpoint it is passed to (``qos_overriding_options=``), set from YAML or the command line."""
    return QoSOverridingOptions(
        policy_kinds=(
            QoSPolicyKind.HISTORY,
            QoSPolicyKind.DEPTH,
            QoSPolicyKind.RELIABILITY,
            QoSPolicyKind.DURABILITY,
        )
    )


def input_qos_overrides() -> QoSOverridingOptions:
    """qos_overrides without reliability, which AdaptiveSubscription declares itself (default ``auto``)."""
    return QoSOverridingOptions(policy_kinds=(QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH, QoSPolicyKind.DURABILITY))


def incompatible_qos_callbacks(
    node: Node, topic: str, warn: Callable[[str], None] | None = None
) -> SubscriptionEventCallbacks:
    """Event callbacks for ``create_subscription(..., event_callbacks=)`` that warn about incompatible publishers.

    The warning reads both profiles from the ROS graph, so it reports what is in effect after parameter
    overrides, e.g. "subscription /x: incompatible reliability QoS (publisher /driver offers BEST_EFFORT, this
    subscription requests RELIABLE); no messages will arrive from it; to fix, set the parameter
    qos_overrides./x.subscription.reliability to best_effort".
    """
    warn = warn or node.get_logger().warning

    def on_incompatible(event: QoSRequestedIncompatibleQoSInfo) -> None:
        warn(incompatible_qos_message(node, node.resolve_topic_name(topic), QoSPolicyKind(event.last_policy_kind)))

    return SubscriptionEventCallbacks(incompatible_qos=on_incompatible)


def incompatible_qos_message(node: Node, topic: str, policy: QoSPolicyKind) -> str:
    """What each publisher of ``topic`` offers for ``policy`` against what ``node``'s subscription requests."""
    policy_name = policy.name.lower()
    offered = {
        _node_path(info.node_namespace, info.node_name): _policy_value(info.qos_profile, policy_name)
        for info in node.get_publishers_info_by_topic(topic)
    }
    requested = [
        _policy_value(info.qos_profile, policy_name)
        for info in node.get_subscriptions_info_by_topic(topic)
        if (info.node_name, info.node_namespace) == (node.get_name(), node.get_namespace())
    ]
    sides = [f"publisher {name} offers {value}" for name, value in offered.items()]
    sides += [f"this subscription requests {value}" for value in requested[:1]]
    if policy in (QoSPolicyKind.RELIABILITY, QoSPolicyKind.DURABILITY) and offered:
        value = next(iter(offered.values())).lower()
        fix = f"to fix, set the parameter qos_overrides.{topic}.subscription.{policy_name} to {value}"
    else:
        fix = f"to fix, make the publisher's {policy_name} compatible"
    both = ", ".join(sides) or "publisher not in the graph yet"
    return f"subscription {topic}: incompatible {policy_name} QoS ({both}); no messages will arrive from it; {fix}"


def _node_path(namespace: str, name: str) -> str:
    return f"{namespace.rstrip('/')}/{name}"


def _policy_value(profile: QoSProfile, policy_name: str) -> str:
    value: Any = getattr(profile, policy_name)
    return value.name if hasattr(value, "name") else str(value)
