"""Entry point of depth_panoptic_node (scripts/depth_panoptic_node, `python -m depth_panoptic_ros.ros.runtime.main`).

SIGINT and SIGTERM become a stop request before anything slow is imported, so that any number of them, during
start-up (imports, model loading), idle or mid-frame, ends the same orderly way: exit code 0, no traceback.
`ros2 launch` sends SIGINT on Ctrl-C to the whole process group and then its own SIGINT (later SIGTERM); a
KeyboardInterrupt raised inside a thread join or a torch call is what used to turn that into a crash.
"""

from __future__ import annotations

import signal
from types import FrameType


class StopSignals:
    """SIGINT/SIGTERM set ``requested`` instead of raising KeyboardInterrupt.

    The handler only sets a flag and takes no lock: Python runs a handler between any two bytecodes of the main
    thread, also inside a run of the same handler, so the earlier ``threading.Event.set`` (a lock inside) deadlocked
    when a second signal came while the first was handled, and the node never exited (killed after 60 s: the
    flaky -9 of test_any_signals_at_start_up_or_idle_exit_with_0; every run hung under a stream of signals).
    """

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> StopSignals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

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
