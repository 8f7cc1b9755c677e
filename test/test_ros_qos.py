"""QoS profiles, parameter overrides and the incompatible-QoS warning, with real rclpy nodes in one process."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import (  # noqa: E402
    QoSDurabilityPolicy,
    QoSHistoryPolicy,
    QoSProfile,
    QoSReliabilityPolicy,
    qos_profile_sensor_data,
)
from std_msgs.msg import String  # noqa: E402

from depth_panoptic_ros.ros.runtime.qos import (  # noqa: E402
    AdaptiveSubscription,
    adapted_reliability,
    incompatible_qos_callbacks,
    qos_overrides,
    sensor_qos,
    transient_local_qos,
)

pytestmark = pytest.mark.ros
RELIABLE, BEST_EFFORT = QoSReliabilityPolicy.RELIABLE, QoSReliabilityPolicy.BEST_EFFORT


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        ([], BEST_EFFORT),  # nobody yet: accept whatever comes
        ([RELIABLE], RELIABLE),
        ([RELIABLE, RELIABLE], RELIABLE),
        ([RELIABLE, BEST_EFFORT], BEST_EFFORT),  # a reliable subscription would not match the best-effort one
        ([BEST_EFFORT], BEST_EFFORT),
    ],
)
def test_inputs_follow_their_publishers_as_rosbag2_does(offered: list, expected: QoSReliabilityPolicy) -> None:
    assert adapted_reliability(offered) == expected


def test_sensor_qos_is_rclpys_sensor_data_profile() -> None:
    profile = sensor_qos()
    assert profile.reliability == QoSReliabilityPolicy.BEST_EFFORT
    assert profile.history == QoSHistoryPolicy.KEEP_LAST
    assert profile.durability == QoSDurabilityPolicy.VOLATILE
    assert profile.depth == 5
    assert profile == qos_profile_sensor_data
    assert sensor_qos(2).depth == 2
    assert sensor_qos() is not sensor_qos()  # a fresh object: rclpy writes overrides into it


def test_class_table_profile_reaches_late_subscribers() -> None:
    profile = transient_local_qos()
    assert profile.reliability == QoSReliabilityPolicy.RELIABLE
    assert profile.durability == QoSDurabilityPolicy.TRANSIENT_LOCAL
    assert (profile.history, profile.depth) == (QoSHistoryPolicy.KEEP_LAST, 1)


@pytest.fixture
def context() -> Iterator[rclpy.Context]:
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        rclpy.shutdown(context=ctx)


def test_parameters_override_the_subscription_qos(context: rclpy.Context) -> None:
    overrides = [
        Parameter("qos_overrides./camera/image.subscription.reliability", value="reliable"),
        Parameter("qos_overrides./camera/image.subscription.depth", value=2),
    ]
    node = rclpy.create_node("qos_override_test", context=context, parameter_overrides=overrides)
    try:
        sub = node.create_subscription(
            String, "/camera/image", lambda _: None, sensor_qos(), qos_overriding_options=qos_overrides()
        )
        assert sub.qos_profile.reliability == QoSReliabilityPolicy.RELIABLE
        assert sub.qos_profile.depth == 2
        assert node.get_parameter("qos_overrides./camera/image.subscription.durability").value == "volatile"
        assert node.get_parameter("qos_overrides./camera/image.subscription.history").value == "keep_last"
        assert qos_profile_sensor_data.reliability == QoSReliabilityPolicy.BEST_EFFORT  # shared profile untouched
    finally:
        node.destroy_node()


def test_best_effort_publisher_and_reliable_subscription_are_reported(context: rclpy.Context) -> None:
    topic = "/qos_mismatch_test"
    publisher_node = rclpy.create_node("bag_player", context=context)
    subscriber_node = rclpy.create_node("panoptic", namespace="/perception", context=context)
    warnings: list[str] = []
    executor = SingleThreadedExecutor(context=context)
    try:
        publisher_node.create_publisher(String, topic, sensor_qos())
        subscriber_node.create_subscription(
            String,
            topic,
            lambda _: None,
            QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE),
            event_callbacks=incompatible_qos_callbacks(subscriber_node, topic, warn=warnings.append),
        )
        executor.add_node(publisher_node)
        executor.add_node(subscriber_node)
        deadline = time.monotonic() + 20
        while not warnings and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown()
        publisher_node.destroy_node()
        subscriber_node.destroy_node()
    assert warnings, "no incompatible-QoS event within 20 s"
    assert warnings[0].startswith(f"subscription {topic}: incompatible reliability QoS (")
    assert "publisher /bag_player offers BEST_EFFORT" in warnings[0]
    assert "this subscription requests RELIABLE" in warnings[0]
    assert warnings[0].endswith(f"set the parameter qos_overrides.{topic}.subscription.reliability to best_effort")


def test_an_adaptive_input_follows_its_publishers_with_one_graph_query_per_update(context: rclpy.Context) -> None:
    topic = "/adaptive_input_test"
    node = rclpy.create_node("panoptic", context=context)
    driver = rclpy.create_node("driver", context=context)
    queries: list[str] = []
    query_graph = node.get_publishers_info_by_topic
    node.get_publishers_info_by_topic = lambda name: queries.append(name) or query_graph(name)
    adaptive = AdaptiveSubscription(node, String, topic, lambda _: None)

    def update_until_changed() -> QoSReliabilityPolicy | None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            before = len(queries)
            policy = adaptive.update()
            assert len(queries) == before + 1  # one graph query, also when the subscription is re-created
            if policy is not None:
                return policy
            time.sleep(0.05)
        return None

    try:
        adaptive.subscribe()  # nobody publishes yet: best effort
        assert adaptive.subscription.qos_profile.reliability == BEST_EFFORT and queries == [topic]
        driver.create_publisher(String, topic, QoSProfile(depth=5, reliability=RELIABLE))
        assert update_until_changed() == RELIABLE
        assert adaptive.subscription.qos_profile.reliability == adaptive.reliability == RELIABLE
        assert adaptive.update() is None  # the same publishers: nothing re-created
        driver.create_publisher(String, topic, sensor_qos())  # a best-effort one among them
        assert update_until_changed() == BEST_EFFORT
        assert adaptive.subscription.qos_profile.reliability == adaptive.reliability == BEST_EFFORT
    finally:
        driver.destroy_node()
        node.destroy_node()
