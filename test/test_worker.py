"""The node's worker without ROS: one after the other, or with look-ahead the next set measured while the one
before is finished, at most one set ahead; failures in either stage skip only their set; stopping ends every
thread. Threads are ordered with events, never with sleeps."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from depth_panoptic_ros.ros.runtime.latest_slot import LatestSlot
from depth_panoptic_ros.ros.runtime.worker import FINISH_SUFFIX, MEASURE_SUFFIX, FrameWorker

NAME = "test_worker"
WAIT_S = 30.0  # only a bound for a broken worker: every wait below ends on an event


class Recorder:
    """Stages that record what they saw; ``finish`` of item ``block_on`` waits for ``release``."""

    def __init__(self, block_on: int | None = None) -> None:
        self.measured: list[int] = []
        self.finished: list[int] = []
        self.failures: list[tuple[object, str]] = []
        self.finishing = threading.Event()  # set when finish(block_on) has started
        self.release = threading.Event()
        self.changed = threading.Condition()
        self.block_on = block_on

    def measure(self, item: int) -> int | None:
        self.record(self.measured, item)
        if item < 0:
            raise ValueError(f"bad set {item}")
        return None if item == 0 else item * 10  # 0: nothing to finish (no subscriber)

    def finish(self, measured: int) -> None:
        if self.block_on is not None and measured == 10 * self.block_on:
            self.finishing.set()
            assert self.release.wait(WAIT_S)
        if measured == 990:
            raise RuntimeError("a bug")
        self.record(self.finished, measured)

    def failed(self, item: object, error: Exception) -> bool:
        self.record(self.failures, (item, str(error)))
        return True

    def record(self, into: list, value: object) -> None:
        with self.changed:
            into.append(value)
            self.changed.notify_all()

    def wait_for(self, done: Callable[[], bool]) -> None:
        with self.changed:
            assert self.changed.wait_for(done, WAIT_S)


def worker(recorder: Recorder, look_ahead: bool) -> tuple[LatestSlot[int], FrameWorker[int, int]]:
    inputs: LatestSlot[int] = LatestSlot()
    return inputs, FrameWorker(inputs, recorder.measure, recorder.finish, recorder.failed, NAME, look_ahead)


def threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith(NAME)}


@pytest.mark.parametrize("look_ahead", [False, True])
def test_sets_are_finished_in_order_and_failures_skip_only_their_set(look_ahead: bool) -> None:
    recorder = Recorder()
    inputs, work = worker(recorder, look_ahead)
    work.start()
    expected = {False: {NAME}, True: {NAME + MEASURE_SUFFIX, NAME + FINISH_SUFFIX}}[look_ahead]
    assert threads() == expected
    for item in (1, -2, 3, 0, 99, 4):  # each once the one before is taken: none is dropped
        inputs.put(item)
        recorder.wait_for(lambda item=item: item in recorder.measured)
    recorder.wait_for(lambda: 40 in recorder.finished)
    assert recorder.finished == [10, 30, 40]
    assert recorder.failures == [(-2, "bad set -2"), (990, "a bug")]
    assert work.stop(WAIT_S) and threads() == set()


def set_2_taken_while_set_1_is_finished() -> tuple[Recorder, LatestSlot[int], FrameWorker[int, int]]:
    """A look-ahead worker whose finish(1) holds until ``release``, once its measure thread has taken set 2."""
    recorder = Recorder(block_on=1)
    inputs, work = worker(recorder, look_ahead=True)
    work.start()
    inputs.put(1)
    assert recorder.finishing.wait(WAIT_S)
    inputs.put(2)
    inputs.wait_taken()
    return recorder, inputs, work


def test_the_next_set_is_measured_while_the_one_before_is_finished_and_no_further() -> None:
    recorder, inputs, work = set_2_taken_while_set_1_is_finished()
    inputs.put(3)  # measured 2 waits for the finish thread: 3 stays queued, and is replaced by 4
    inputs.put(4)
    recorder.wait_for(lambda: recorder.measured == [1, 2])
    assert inputs.dropped == 1
    recorder.release.set()
    recorder.wait_for(lambda: recorder.finished == [10, 20, 40])
    assert recorder.measured == [1, 2, 4]
    assert work.stop(WAIT_S) and threads() == set()


def test_stop_drops_a_measured_set_and_ends_both_threads() -> None:
    recorder, _, work = set_2_taken_while_set_1_is_finished()
    work.close()  # finish(1) is still running: it completes; set 2, measured or not, is never finished
    recorder.release.set()
    assert work.stop(WAIT_S) and threads() == set()
    assert recorder.finished == [10]


def test_a_false_answer_from_failed_ends_the_worker() -> None:
    inputs: LatestSlot[int] = LatestSlot()
    work = FrameWorker(inputs, lambda item: item, lambda item: 1 / 0, lambda item, error: False, NAME, True)
    work.start()
    inputs.put(1)
    for thread in [t for t in threading.enumerate() if t.name.startswith(NAME)]:
        thread.join(WAIT_S)
    assert threads() == set() and not inputs.wait_taken()  # ended by themselves, the input slot closed
