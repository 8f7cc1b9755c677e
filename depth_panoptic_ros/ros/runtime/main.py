"""Entry point of depth_panoptic_node (scripts/depth_panoptic_node, `python -m depth_panoptic_ros.ros.runtime.main`).

SIGINT and SIGTERM become a stop request before anything slow is imported, so that any number of them, during
start-up (imports, model loading), idle or mid-frame, ends the same orderly way: exit code 0, no traceback.
`ros2 launch` sends SIGINT on Ctrl-C to the whole process group and then its own SIGINT (later SIGTERM); a
KeyboardInterrupt raised inside a thread join or a torch call is what used to turn that into a crash.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class StopSignals:
    """SIGINT/SIGTERM set ``event`` instead of raising KeyboardInterrupt; ``received`` lists them in order."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received: list[int] = []

    def install(self) -> StopSignals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def ignore(self) -> None:
        """Ignores SIGINT/SIGTERM from now on, when the process is exiting anyway: Python's finalization resets
        a Python-level handler (but not SIG_IGN) to the default, which would end a fast exit with -2."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


def main(args: list[str] | None = None) -> int:
    stop = StopSignals().install()
    from depth_panoptic_ros.ros.runtime.node import run_node  # rclpy, torch: seconds, now interruptible

    try:
        return run_node(stop, args)
    finally:
        stop.ignore()


if __name__ == "__main__":
    raise SystemExit(main())
