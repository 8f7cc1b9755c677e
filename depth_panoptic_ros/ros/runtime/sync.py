"""Approximate-time synchronization of the node's inputs, and the bookkeeping that says why no set comes out.

The matching rule is message_filters.ApproximateTimeSynchronizer's (Python implementation), used directly when
message_filters is importable. Around it, :class:`TopicSynchronizer` adds what users of perception nodes ask for:
only sets newer than the last one are emitted (stale messages are dropped instead of growing latency), a stamp
older than the previous one of its topic (a rosbag loop of any length, a simulator reset) restarts matching
instead of stalling it, and per-topic receive counts, silence and the closest stamps seen tell why nothing is
synchronized.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

NS_PER_S = 1_000_000_000

_log = logging.getLogger(__name__)


def stamp_ns(stamp: Any) -> int:
    """Nanoseconds from an int, a builtin_interfaces/Time or an rclpy Time."""
    if isinstance(stamp, int):
        return stamp
    if hasattr(stamp, "nanoseconds"):
        return int(stamp.nanoseconds)
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


class Matcher(Protocol):
    """Approximate-time matching over per-input queues {stamp ns: message}."""

    queues: list[dict[int, Any]]

    def add(self, index: int, stamp: int, msg: Any) -> None: ...


class ApproximateTimeMatcher:
    """message_filters' ApproximateTimeSynchronizer rule, without rclpy.

    A message joins its input's queue (the oldest is dropped beyond ``queue_size``). From every other queue the
    stamps within ``slop`` of the new one (|s - t| <= slop) are ordered by closeness to it; the first combination
    in itertools.product order whose spread max - min is strictly below ``slop`` is emitted and removed.
    """

    def __init__(self, n_inputs: int, queue_size: int, slop_ns: int, emit: Callable[..., None]) -> None:
        self.queues: list[dict[int, Any]] = [{} for _ in range(n_inputs)]
        self._queue_size = queue_size
        self._slop = slop_ns
        self._emit = emit

    def add(self, index: int, stamp: int, msg: Any) -> None:
        queue = self.queues[index]
        queue[stamp] = msg
        while len(queue) > self._queue_size:
            del queue[min(queue)]
        candidates = []
        for other in self.queues[:index] + self.queues[index + 1 :]:
            near = sorted((s for s in other if abs(s - stamp) <= self._slop), key=lambda s: abs(s - stamp))
            if not near:
                return
            candidates.append(near)
        for others in itertools.product(*candidates):
            stamps = [*others[:index], stamp, *others[index:]]
            picked = list(zip(self.queues, stamps, strict=True))
            if max(stamps) - min(stamps) < self._slop and all(s in q for q, s in picked):
                self._emit(*(q[s] for q, s in picked))
                for q, s in picked:
                    del q[s]
                return


class MessageFiltersMatcher:
    """message_filters.ApproximateTimeSynchronizer fed through one SimpleFilter per input."""

    def __init__(self, n_inputs: int, queue_size: int, slop_ns: int, emit: Callable[..., None]) -> None:
        import message_filters

        self._inputs = [message_filters.SimpleFilter() for _ in range(n_inputs)]
        synchronizer = message_filters.ApproximateTimeSynchronizer(self._inputs, queue_size, slop_ns / NS_PER_S)
        synchronizer.registerCallback(emit)
        self.queues: list[dict[int, Any]] = synchronizer.queues

    def add(self, index: int, stamp: int, msg: Any) -> None:
        self._inputs[index].signalMessage(msg)


MatcherFactory = Callable[[int, int, int, Callable[..., None]], Matcher]


class TopicSynchronizer:
    """Approximate-time sets of the newest messages of several topics (thread-safe).

    ``callback(*msgs)`` gets one message per topic, in the order of ``topics``. A message not newer than the last
    one emitted on its topic is dropped (counted in ``late_drops``). One older than the previous message of its
    own topic means time jumped back, since a topic's messages arrive in order (bag loop of any length, simulator
    reset): the queues are cleared, ``on_time_jump(topic, previous_ns, stamp_ns)`` is called and the message
    starts the new timeline. ``closest`` holds the tightest combination of stamps seen since the last set.
    Receive times come from ``clock`` (ns, monotonic by default), stamps from the message headers.
    """

    def __init__(
        self,
        topics: Sequence[str],
        queue_size: int,
        slop_s: float,
        callback: Callable[..., None],
        *,
        matcher_factory: MatcherFactory = ApproximateTimeMatcher,
        on_time_jump: Callable[[str, int, int], None] | None = None,
        warn: Callable[[str], None] = _log.warning,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if not topics:
            raise ValueError("synchronizer: expected at least one topic, got none")
        if queue_size < 1:
            raise ValueError(f"synchronizer: queue_size must be >= 1, got {queue_size}")
        if not slop_s > 0:
            raise ValueError(f"synchronizer: slop must be > 0 s, got {slop_s}")
        self.topics = list(topics)
        self._queue_size = queue_size
        self._slop_ns = round(slop_s * NS_PER_S)
        self._callback = callback
        self._matcher_factory = matcher_factory
        self._on_time_jump = on_time_jump
        self._warn = warn
        self._clock = clock
        self._lock = threading.Lock()
        self._ready: list[tuple[Any, ...]] = []  # sets matched under the lock, handed out after releasing it
        n = len(self.topics)
        self.receive_counts = [0] * n
        self.late_drops = [0] * n
        self.sets_emitted = 0
        self.last_stamps: list[int | None] = [None] * n  # header stamps, ns
        self.closest: tuple[int, ...] | None = None  # one stamp per topic, the smallest spread since the last set
        self._last_emitted: list[int | None] = [None] * n
        self._started_ns = clock()
        self._last_receive_ns: list[int | None] = [None] * n
        self.last_set_ns: int | None = None
        self._matcher = self._new_matcher()

    def _new_matcher(self) -> Matcher:
        return self._matcher_factory(len(self.topics), self._queue_size, self._slop_ns, self._emit)

    def add(self, index: int, msg: Any) -> None:
        """Feeds a message of topic ``index``; a subscription callback calls this."""
        try:
            stamp = stamp_ns(msg.header.stamp)
        except AttributeError:
            self._warn(f"{self.topics[index]}: message without header.stamp ignored (synchronization needs stamps)")
            return
        jumped_from = None
        with self._lock:
            self._ready.clear()
            self.receive_counts[index] += 1
            self._last_receive_ns[index] = self._clock()
            previous = self.last_stamps[index]
            if previous is not None and stamp < previous:
                jumped_from = previous
                self._reset_timeline(index, stamp)
            else:
                self.last_stamps[index] = stamp
                if self._last_emitted[index] is not None and stamp <= self._last_emitted[index]:
                    self.late_drops[index] += 1
                    return
            self._note_closest(index, stamp)
            self._matcher.add(index, stamp, msg)
            ready = list(self._ready)
        if jumped_from is not None:
            self._warn(
                f"{self.topics[index]}: stamp jumped back {(jumped_from - stamp) / NS_PER_S:.3f} s "
                f"({jumped_from / NS_PER_S:.3f} -> {stamp / NS_PER_S:.3f}); synchronizer queues cleared"
            )
            if self._on_time_jump is not None:
                self._on_time_jump(self.topics[index], jumped_from, stamp)
        for msgs in ready:
            self._callback(*msgs)

    def _reset_timeline(self, index: int, stamp: int) -> None:
        self._matcher = self._new_matcher()
        self._last_emitted = [None] * len(self.topics)
        self.last_stamps = [None] * len(self.topics)
        self.last_stamps[index] = stamp
        self.closest = None

    def _note_closest(self, index: int, stamp: int) -> None:
        """Keeps the tightest combination of ``stamp`` with the nearest queued stamp of every other topic."""
        stamps = []
        for i, queue in enumerate(self._matcher.queues):
            if i == index:
                stamps.append(stamp)
            elif queue:
                stamps.append(min(queue, key=lambda s: abs(s - stamp)))
            else:
                return
        if self.closest is None or max(stamps) - min(stamps) < max(self.closest) - min(self.closest):
            self.closest = tuple(stamps)

    def _emit(self, *msgs: Any) -> None:
        stamps = [stamp_ns(m.header.stamp) for m in msgs]
        for queue, emitted in zip(self._matcher.queues, stamps, strict=True):
            for s in [s for s in queue if s < emitted]:
                del queue[s]
        self._last_emitted = stamps
        self.closest = None
        self.sets_emitted += 1
        self.last_set_ns = self._clock()
        self._ready.append(msgs)

    def unmatched_reason(self) -> str:
        """Why messages arrive on every topic but form no set: the closest stamps seen, or late drops."""
        with self._lock:
            closest, late = self.closest, list(self.late_drops)
        slop = f"sync_slop {self._slop_ns / NS_PER_S:g} s"
        if closest is None:
            drops = ", ".join(f"{topic} {n}" for topic, n in zip(self.topics, late, strict=True) if n)
            return f"no stamps to match within {slop}: messages older than the last set dropped ({drops or 'none'})"
        stamps = ", ".join(f"{topic} {s / NS_PER_S:.3f}" for topic, s in zip(self.topics, closest, strict=True))
        spread = (max(closest) - min(closest)) / NS_PER_S
        return f"stamps never within {slop} of each other (closest seen: {stamps}, {spread:.3f} s apart)"

    def silent_topics(self, now_ns: int, timeout_s: float) -> list[str]:
        """Topics with nothing received for ``timeout_s`` (counted from construction for a topic never heard)."""
        limit = now_ns - round(timeout_s * NS_PER_S)
        with self._lock:
            return [
                topic
                for topic, last in zip(self.topics, self._last_receive_ns, strict=True)
                if (self._started_ns if last is None else last) < limit
            ]


def make_synchronizer(
    topics: Sequence[str], queue_size: int, slop_s: float, callback: Callable[..., None], **options: Any
) -> TopicSynchronizer:
    """A :class:`TopicSynchronizer` over message_filters on a ROS distro that has it, else over the same rule in
    pure Python; ``options`` are TopicSynchronizer's keyword arguments."""
    try:
        import message_filters  # noqa: F401
    except ImportError:
        matcher_factory: MatcherFactory = ApproximateTimeMatcher
    else:
        matcher_factory = MessageFiltersMatcher
    return TopicSynchronizer(topics, queue_size, slop_s, callback, matcher_factory=matcher_factory, **options)
