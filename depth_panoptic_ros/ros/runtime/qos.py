"""Quality of service of the node's endpoints (REP 2003) and a loud warning for a QoS mismatch.

A best-effort publisher and a reliable subscription (typical with ``ros2 bag play`` or a driver using sensor
QoS) match silently and deliver nothing; the warning names both sides and the parameter that fixes it.
Profiles are built fresh on every call because rclpy applies parameter overrides to the profile object it is
given, which would otherwise leak into rclpy's shared ``qos_profile_sensor_data``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
