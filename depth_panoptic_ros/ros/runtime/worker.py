"""The node's worker threads of one activation: each input set is measured (its CPU stages), then finished (the
networks, the products, publishing).

One after the other in one thread by default. With look-ahead, two threads: the measure thread works on the next
set while the finish thread works on the one before (on a GPU the projection and completion, CPU kernels that
release the GIL, then run while the networks do). The measure thread is at most one set ahead: it takes an input
only once the finish thread has taken the set it measured before, so it always takes the newest input and never
measures a set that would be dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from depth_panoptic_ros.ros.runtime.latest_slot import LatestSlot

S = TypeVar("S")  # an input set
M = TypeVar("M")  # a measured set

MEASURE_SUFFIX = "_measure"
FINISH_SUFFIX = "_finish"


class FrameWorker(Generic[S, M]):
    """Takes the newest item of ``inputs`` until it is closed. ``measure`` returns None for an item with nothing
    to finish; an exception from either stage goes to ``failed(item, error)``, which returns False when the worker
    must end (shutting down); the worker serves the next item otherwise. Threads are named ``name``, or with
    look-ahead ``name`` + MEASURE_SUFFIX and ``name`` + FINISH_SUFFIX."""

    def __init__(
        self,
        inputs: LatestSlot[S],
        measure: Callable[[S], M | None],
        finish: Callable[[M], None],
        failed: Callable[[S | M, Exception], bool],
        name: str,
        look_ahead: bool = False,
    ) -> None:
        self._inputs = inputs
        self._measured: LatestSlot[M] = LatestSlot()
        self._measure, self._finish, self._failed = measure, finish, failed
        loops = (
            {name + MEASURE_SUFFIX: self._measure_ahead, name + FINISH_SUFFIX: self._finish_measured}
            if look_ahead
            else {name: self._one_after_the_other}
        )
        self._threads = [threading.Thread(target=loop, name=n, daemon=True) for n, loop in loops.items()]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        """Ends the threads after the stage each one is in: the queued input and a measured set are dropped."""
        self._inputs.close()
        self._measured.close()

    def stop(self, timeout: float) -> bool:
        """Closes and joins the threads; False when one is still busy after ``timeout`` seconds."""
        self.close()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        return not any(thread.is_alive() for thread in self._threads)

    def _one_after_the_other(self) -> None:
        while (item := self._inputs.take()) is not None:
            measured = self._run(self._measure, item)
            if measured is not None:
                self._run(self._finish, measured)

    def _measure_ahead(self) -> None:
        while self._measured.wait_taken() and (item := self._inputs.take()) is not None:
            measured = self._run(self._measure, item)
            if measured is not None:
                self._measured.put(measured)

    def _finish_measured(self) -> None:
        while (measured := self._measured.take()) is not None:
            self._run(self._finish, measured)

    def _run(self, stage: Callable[[S], M | None] | Callable[[M], None], item: S | M) -> M | None:
        """``stage(item)``; None when it raised (then ``failed`` decides whether the worker goes on)."""
        try:
            return stage(item)
        except Exception as error:
            if not self._failed(item, error):
                self.close()
            return None
