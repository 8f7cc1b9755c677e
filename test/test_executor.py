"""The node's executor: the events executor with a real stderr, the single-threaded one without."""

from __future__ import annotations

import faulthandler
import io
import sys

import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from depth_panoptic_ros.ros.runtime.executor import make_executor  # noqa: E402


@pytest.fixture
def context() -> object:
    rclpy.init()
    yield
    rclpy.try_shutdown()


def test_the_events_executor_where_stderr_has_a_file_descriptor(context: object) -> None:
    pytest.importorskip("rclpy.experimental")
    was_enabled = faulthandler.is_enabled()
    with open("/dev/null", "w") as devnull:  # faulthandler writes to this descriptor
        real, sys.stderr = sys.stderr, devnull
        try:
            executor = make_executor()
        finally:
            sys.stderr = real
            faulthandler.disable()  # it pointed at devnull
            if was_enabled:
                faulthandler.enable(file=sys.__stderr__)
    assert not isinstance(executor, SingleThreadedExecutor) and hasattr(executor, "spin_once")
    executor.shutdown()


def test_the_single_threaded_executor_where_stderr_has_none(context: object) -> None:
    real, sys.stderr = sys.stderr, io.StringIO()
    try:
        executor = make_executor()
    finally:
        sys.stderr = real
    assert isinstance(executor, SingleThreadedExecutor)
    executor.shutdown()
