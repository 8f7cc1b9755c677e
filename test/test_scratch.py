"""Scratch arrays: the same memory call after call under one name, grown when too small, one set per thread."""

from __future__ import annotations

import threading

import numpy as np

from depth_panoptic_ros.scratch import Scratch


def test_a_name_hands_out_the_same_memory_until_it_must_grow() -> None:
    scratch = Scratch()
    first = scratch.array("a", (4, 6), np.float32)
    assert first.shape == (4, 6) and first.dtype == np.float32 and first.flags.c_contiguous
    first[:] = 7
    smaller = scratch.array("a", (3, 2), np.int16)  # fits: same memory, left as the last user wrote it
    assert smaller.shape == (3, 2) and smaller.dtype == np.int16 and np.shares_memory(first, smaller)
    assert not np.shares_memory(first, scratch.array("b", (4, 6), np.float32))  # other names: other memory
    grown = scratch.array("a", (10, 10), np.float64)
    assert grown.shape == (10, 10) and not np.shares_memory(first, grown)
    assert np.shares_memory(grown, scratch.array("a", (4, 6), np.float32))
    assert scratch.array("a", (0, 5), np.uint8).shape == (0, 5)


def test_each_thread_has_its_own_memory() -> None:
    scratch = Scratch()
    here = scratch.array("a", (8,), np.float32)
    there: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: there.append(scratch.array("a", (8,), np.float32)))
    worker.start()
    worker.join()
    assert not np.shares_memory(here, there[0])
    assert np.shares_memory(here, scratch.array("a", (8,), np.float32))
