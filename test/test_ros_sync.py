"""Approximate-time synchronization: hand-worked stamp sequences under message_filters' rule, plus the node's
bookkeeping (stale and late messages, time jumping back, silent topics). Pure Python, no ROS needed."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field

import pytest

from depth_panoptic_ros.ros.runtime.sync import (
    ApproximateTimeMatcher,
    MessageFiltersMatcher,
    TopicSynchronizer,
    make_synchronizer,
    stamp_ns,
)

MS = 1_000_000


try:  # message_filters (when installed) accepts only real builtin_interfaces/Time stamps
    from builtin_interfaces.msg import Time as Stamp
except ImportError:

    @dataclass(frozen=True)
    class Stamp:
        sec: int
        nanosec: int


@dataclass(frozen=True)
class Header:
    stamp: Stamp


@dataclass(frozen=True)
class Msg:
    label: str
    header: Header = field(repr=False)


def msg(label: str) -> Msg:
    """'c215' -> a message of topic c stamped 215 ms."""
    ns = int(label[1:]) * MS
    return Msg(label, Header(Stamp(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)))


MATCHERS = [
    ApproximateTimeMatcher,
    pytest.param(
        MessageFiltersMatcher,
        marks=pytest.mark.skipif(importlib.util.find_spec("message_filters") is None, reason="no message_filters"),
    ),
]


class Recorder:
    def __init__(self) -> None:
        self.sets: list[tuple[str, ...]] = []
        self.warnings: list[str] = []
        self.jumps: list[tuple[str, int, int]] = []

    def __call__(self, *msgs: Msg) -> None:
        self.sets.append(tuple(m.label for m in msgs))


def synchronizer(matcher, topics: str = "abc", queue_size: int = 5, slop_s: float = 0.05, **options):
    recorder = Recorder()
    sync = TopicSynchronizer(
        list(topics),
        queue_size,
        slop_s,
        recorder,
        matcher_factory=matcher,
        warn=recorder.warnings.append,
        on_time_jump=lambda *jump: recorder.jumps.append(jump),
        **options,
    )
    return sync, recorder


def feed(sync: TopicSynchronizer, labels: str) -> None:
    for label in labels.split():
        sync.add(sync.topics.index(label[0]), msg(label))


def test_stamp_ns_accepts_ints_and_time_messages() -> None:
    assert stamp_ns(5) == 5
    assert stamp_ns(Stamp(sec=3, nanosec=250)) == 3_000_000_250


@pytest.mark.parametrize("matcher", MATCHERS)
def test_camera_lidar_info_with_jitter(matcher) -> None:
    sync, rec = synchronizer(matcher, "cli")
    # Each set completes on its last arrival: spreads 10, 5 and 15 ms, all below the 50 ms slop.
    feed(sync, "c0 i0 l10 c100 l95 i100 c200 i200 l215")
    assert rec.sets == [("c0", "l10", "i0"), ("c100", "l95", "i100"), ("c200", "l215", "i200")]
    assert sync.receive_counts == [3, 3, 3] and sync.sets_emitted == 3


@pytest.mark.parametrize("matcher", MATCHERS)
def test_first_combination_in_product_order_wins_not_the_smallest_spread(matcher) -> None:
    sync, rec = synchronizer(matcher)
    # Nothing matches until b100: then a's candidates by closeness are [a72 (28), a138 (38)] and c's are
    # [c135 (35), c60 (40)]. (a72, c135) spans 63 ms >= slop; next in product order is (a72, c60): 40 ms, emitted,
    # although (a138, c135) would span only 38 ms. Those two then pair with b140.
    feed(sync, "c60 a72 c135 a138 b100")
    assert rec.sets == [("a72", "b100", "c60")]
    feed(sync, "b140")
    assert rec.sets[1] == ("a138", "b140", "c135")


@pytest.mark.parametrize("matcher", MATCHERS)
def test_spread_must_be_strictly_below_slop(matcher) -> None:
    sync, rec = synchronizer(matcher, "ab")
    feed(sync, "a0 b50")  # candidate (|50 - 0| <= slop) but the spread 50 is not < 50
    assert rec.sets == []
    feed(sync, "a60")
    assert rec.sets == [("a60", "b50")]


@pytest.mark.parametrize("matcher", MATCHERS)
@pytest.mark.parametrize(("queue_size", "expected"), [(2, [("a100", "b98")]), (3, [("a0", "b5"), ("a100", "b98")])])
def test_queue_overflow_drops_the_oldest(matcher, queue_size: int, expected: list) -> None:
    sync, rec = synchronizer(matcher, "ab", queue_size=queue_size)
    feed(sync, "a0 a100 a200 b5 b98")  # with 2 slots, a0 is gone when b5 arrives
    assert rec.sets == expected


@pytest.mark.parametrize("matcher", MATCHERS)
def test_messages_older_than_the_last_set_never_come_out(matcher) -> None:
    sync, rec = synchronizer(matcher, "ab", slop_s=0.1)
    feed(sync, "a0 a50 b60")  # b60's candidates: a50 (10 ms), a0 (60 ms) -> (a50, b60); a0 is now stale
    assert rec.sets == [("a50", "b60")]
    # message_filters alone would pair the stale a0 with b70 (spread 70 < 100); here a0 was dropped with the set.
    feed(sync, "b70")
    assert rec.sets == [("a50", "b60")]
    feed(sync, "a50 b80")  # a50 again (a duplicate after the set holding it): dropped, not paired with b70/b80
    assert rec.sets == [("a50", "b60")] and sync.late_drops == [1, 0] and rec.jumps == []
    feed(sync, "a85")
    assert rec.sets[-1] == ("a85", "b80")


@pytest.mark.parametrize("matcher", MATCHERS)
def test_time_jumping_back_resets_the_queues(matcher) -> None:
    sync, rec = synchronizer(matcher, "ab")
    feed(sync, "a100000 b100010 a100100")
    feed(sync, "a99950")  # 150 ms older than the previous a: its timeline restarted
    assert rec.jumps == [("a", 100_100 * MS, 99_950 * MS)]
    assert "a: stamp jumped back 0.150 s (100.100 -> 99.950)" in rec.warnings[0]
    feed(sync, "b99955")  # without the reset this would be dropped as older than the last set
    assert rec.sets == [("a100000", "b100010"), ("a99950", "b99955")]
    assert len(rec.jumps) == 1 and sync.late_drops == [0, 0]


@pytest.mark.parametrize("matcher", MATCHERS)
@pytest.mark.parametrize(("per_pass", "period_ms"), [(5, 100), (2, 500)])
def test_a_short_bag_looped_yields_every_set_of_every_pass(matcher, per_pass: int, period_ms: int) -> None:
    """A 0.5 s bag (5 sets at 10 Hz) or a 1 s one (2 sets at 2 Hz), LiDAR 3 ms after the image, played 3 times."""
    sync, rec = synchronizer(matcher, "il")
    one_pass = " ".join(f"i{k * period_ms} l{k * period_ms + 3}" for k in range(per_pass))
    for _ in range(3):
        feed(sync, one_pass)
    assert len(rec.sets) == 3 * per_pass and rec.sets[:per_pass] == rec.sets[per_pass : 2 * per_pass]
    assert len(rec.jumps) == 2 and sync.late_drops == [0, 0]  # one jump per restart, on the image topic


def test_unmatched_reason_reports_the_closest_stamps_seen() -> None:
    sync, rec = synchronizer(ApproximateTimeMatcher, "ab")
    # a0: b empty; b100 ~ a0 (100 ms); a200 ~ b100 (100); b303 ~ a200 (103): the first 100 ms pair is the closest
    feed(sync, "a0 b100 a200 b303")
    assert rec.sets == []
    assert sync.unmatched_reason() == (
        "stamps never within sync_slop 0.05 s of each other (closest seen: a 0.000, b 0.100, 0.100 s apart)"
    )
    feed(sync, "a290")  # 13 ms from b303: a set, and the record starts again
    assert rec.sets == [("a290", "b303")] and sync.closest is None
    feed(sync, "a400 b470")
    assert "(closest seen: a 0.400, b 0.470, 0.070 s apart)" in sync.unmatched_reason()


def test_unmatched_reason_names_late_drops_when_nothing_could_be_matched() -> None:
    sync, rec = synchronizer(ApproximateTimeMatcher, "ab")
    feed(sync, "a0 b10 a0")  # the set (a0, b10), then a duplicate of a0
    assert rec.sets == [("a0", "b10")]
    assert sync.unmatched_reason() == (
        "no stamps to match within sync_slop 0.05 s: messages older than the last set dropped (a 1)"
    )


def test_silent_topics_name_inputs_quiet_for_the_timeout() -> None:
    now = [0]
    sync, _ = synchronizer(ApproximateTimeMatcher, clock=lambda: now[0])
    s = 1_000_000_000
    now[0] = 1 * s
    feed(sync, "a0")
    assert sync.silent_topics(2 * s, timeout_s=2.5) == []  # started at 0: nobody silent for 2.5 s yet
    assert sync.silent_topics(3 * s, timeout_s=2.5) == ["b", "c"]  # never heard since start, 3 s ago
    assert sync.silent_topics(4 * s, timeout_s=2.5) == ["a", "b", "c"]  # a last heard at 1 s
    assert sync.last_set_ns is None


def test_headerless_messages_are_ignored_with_a_warning() -> None:
    sync, rec = synchronizer(ApproximateTimeMatcher, "ab")
    sync.add(0, object())
    assert sync.receive_counts == [0, 0] and "a: message without header.stamp ignored" in rec.warnings[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([], 5, 0.1), "at least one topic"),
        ((["a"], 0, 0.1), "queue_size must be >= 1, got 0"),
        ((["a"], 5, 0), "slop must be > 0 s, got 0"),
    ],
)
def test_invalid_settings_raise(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TopicSynchronizer(*args, callback=print)


def test_make_synchronizer_falls_back_to_the_pure_python_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "message_filters", None)  # as on a machine without it
    rec = Recorder()
    sync = make_synchronizer(["a", "b"], 5, 0.05, rec)
    feed(sync, "a0 b10 a100 b120")
    assert rec.sets == [("a0", "b10"), ("a100", "b120")]
