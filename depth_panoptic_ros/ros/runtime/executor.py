"""The executor the node spins."""

from __future__ import annotations

import io

from rclpy.executors import Executor, SingleThreadedExecutor


def make_executor() -> Executor:
    """rclpy's events executor where the distro has it (Jazzy on), else the single-threaded one.

    The events executor takes and dispatches messages in C++, so the executor thread holds the GIL far less and the
    worker keeps its pace under input overload (``bench node`` at 5x capacity, BENCHMARKS.md). It also enables
    faulthandler (a crash in C++ prints the Python stack), which needs a stderr with a file descriptor; where there is
    none (an embedding host, a captured stream) the single-threaded executor is used.
    """
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:
        return SingleThreadedExecutor()
    try:
        return EventsExecutor()
    except (io.UnsupportedOperation, RuntimeError):
        return SingleThreadedExecutor()
