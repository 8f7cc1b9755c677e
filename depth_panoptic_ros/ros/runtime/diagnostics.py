"""What the node reports on /diagnostics: its lifecycle state, and while active rates, drops, skips, latency and
the model state.

The counters are written by the subscription callbacks and the worker thread and read by a timer, hence the
lock; rates and latency statistics are per reporting period, so a stall shows within one period.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

LIFECYCLE = "lifecycle state"
MODEL = "model"
SETS = "synchronized sets"
SET_RATE = "synchronized set rate (Hz)"
PROCESSED = "processed"
PROCESSED_RATE = "processed rate (Hz)"
DROPPED = "dropped (newer set arrived)"
IDLE = "idle (no subscribers)"
SKIPPED = "skipped (bad input)"
LAST_SKIP = "last skip reason"
LATENCY = "latency median / max (ms)"
PROCESSING = "processing median (ms)"
SYNC = "synchronization"
RECEIVED = "received "  # + input topic


@dataclass(frozen=True)
class ModelState:
    """What the node loaded, as the diagnostics and the log say it."""

    description: str


NOT_LOADED = ModelState("not loaded (node not configured)")


@dataclass(frozen=True)
class Snapshot:
    """Totals since start, and latencies of the frames processed since the previous snapshot."""

    sets: int
    processed: int
    idle: int
    skipped: int
    last_skip: str
    latency_ms: tuple[float, ...]
    processing_ms: tuple[float, ...]


class FrameStatistics:
    """Thread-safe counters of what happened to the synchronized input sets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sets = self._processed = self._idle = self._skipped = 0
        self._last_skip = ""
        self._latency_ms: list[float] = []
        self._processing_ms: list[float] = []

    def count_set(self) -> None:
        with self._lock:
            self._sets += 1

    def count_processed(self, processing_ms: float, latency_ms: float) -> None:
        with self._lock:
            self._processed += 1
            self._processing_ms.append(processing_ms)
            self._latency_ms.append(latency_ms)

    def count_idle(self) -> None:
        with self._lock:
            self._idle += 1

    def count_skipped(self, reason: str) -> None:
        with self._lock:
            self._skipped += 1
            self._last_skip = reason

    def snapshot(self) -> Snapshot:
        """The totals; starts a new period for the latency statistics."""
        with self._lock:
            snap = Snapshot(
                self._sets,
                self._processed,
                self._idle,
                self._skipped,
                self._last_skip,
                tuple(self._latency_ms),
                tuple(self._processing_ms),
            )
            self._latency_ms.clear()
            self._processing_ms.clear()
        return snap


def diagnostic_status(
    name: str,
    hardware_id: str,
    now: Snapshot,
    before: Snapshot,
    seconds: float,
    model: ModelState,
    dropped: int,
    received: dict[str, int],
    sync_problem: str | None,
) -> DiagnosticStatus:
    """The active node's status over the period between two snapshots ``seconds`` apart.

    WARN when no synchronized set arrives, or frames were skipped in the period.
    """
    set_rate = (now.sets - before.sets) / seconds
    processed_rate = (now.processed - before.processed) / seconds
    latency = f"{np.median(now.latency_ms):.1f} / {max(now.latency_ms):.1f}" if now.latency_ms else "-"
    processing = f"{np.median(now.processing_ms):.1f}" if now.processing_ms else "-"
    skipped = now.skipped - before.skipped
    problems = [
        *([sync_problem] if sync_problem else []),
        *([f"skipped {skipped} frame(s), last: {now.last_skip}"] if skipped else []),
    ]
    if problems:
        level, message = DiagnosticStatus.WARN, "; ".join(problems)
    elif processed_rate == 0 and now.idle > before.idle:
        level, message = DiagnosticStatus.OK, "idle: no output has subscribers"
    else:
        level, message = DiagnosticStatus.OK, f"processing {processed_rate:.1f} Hz, latency {latency} ms"
    values = {
        LIFECYCLE: "active",
        MODEL: model.description,
        SETS: str(now.sets),
        SET_RATE: f"{set_rate:.2f}",
        PROCESSED: str(now.processed),
        PROCESSED_RATE: f"{processed_rate:.2f}",
        DROPPED: str(dropped),
        IDLE: str(now.idle),
        SKIPPED: str(now.skipped),
        LAST_SKIP: now.last_skip or "-",
        LATENCY: latency,
        PROCESSING: processing,
        SYNC: sync_problem or "ok",
        **{f"{RECEIVED}{topic}": str(count) for topic, count in received.items()},
    }
    return _status(level, name, message, hardware_id, values)


def idle_status(name: str, hardware_id: str, state: str, model: ModelState, configure_error: str) -> DiagnosticStatus:
    """The status of a node that is not active (unconfigured, inactive, in a transition): OK, since a lifecycle
    manager or an operator put it there, unless its last configure failed (ERROR, with the reason)."""
    if configure_error:
        level, message = DiagnosticStatus.ERROR, f"{state}: {configure_error}"
    else:
        level, message = DiagnosticStatus.OK, f"{state}: not processing"
    values = {LIFECYCLE: state, MODEL: model.description}
    return _status(level, name, message, hardware_id, values)


def _status(level: bytes, name: str, message: str, hardware_id: str, values: dict[str, str]) -> DiagnosticStatus:
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )
