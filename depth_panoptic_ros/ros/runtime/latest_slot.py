"""A one-item hand-off from the ROS callbacks to the worker thread that keeps only the newest item.

A queue would let latency grow without bound whenever the input outpaces the model (users' first complaint
about perception nodes); here an item the worker has not taken yet is replaced by the next one and counted.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Thread-safe: any number of producers ``put``, one consumer ``take``s; a producer that must not replace an
    item waits for the consumer first (``wait_taken``)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.dropped = 0  # items replaced before they were taken

    def put(self, item: T) -> None:
        with self._condition:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._condition.notify_all()  # the consumer, past any producer in wait_taken

    def take(self) -> T | None:
        """Blocks until an item is there and returns it; None once the slot is closed (an item left is dropped)."""
        with self._condition:
            self._condition.wait_for(lambda: self._item is not None or self._closed)
            if self._closed:
                return None
            item, self._item = self._item, None
            self._condition.notify_all()  # a producer in wait_taken
            return item

    def wait_taken(self) -> bool:
        """Blocks until no item waits (the consumer took the last one); False once the slot is closed."""
        with self._condition:
            self._condition.wait_for(lambda: self._item is None or self._closed)
            return not self._closed

    def close(self) -> None:
        """Wakes the consumer for good: it gets None from now on."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
