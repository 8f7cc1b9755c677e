"""Scratch arrays that keep their memory from call to call, one set per thread.

Why: fresh memory is paid for in page faults when it is first written. On the 2-core VMs this package is
measured on a fault costs ~3.5 us, and glibc returns large freed blocks to the kernel, so every image-sized
temporary of a per-frame function is faulted in anew on every frame: ~12 MB, i.e. ~3000 faults and about half
of the classical completion's time on a KITTI frame (bench/completion.py). Reused scratch memory is faulted once.
"""

from __future__ import annotations

import math
import threading

import numpy as np


class Scratch(threading.local):
    """Named arrays; each thread sees its own, so functions using one Scratch may run in several threads."""

    def __init__(self) -> None:
        self._memory: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """A C-contiguous array of ``shape`` and ``dtype`` on the memory held under ``name``, grown when too small.

        Its content is whatever the previous user of the name left: the caller writes before reading, and a name
        may be held by one array at a time (a second call with the name hands out the same memory)."""
        dtype = np.dtype(dtype)
        size = math.prod(shape) * dtype.itemsize
        memory = self._memory.get(name)
        if memory is None or memory.size < size:
            memory = self._memory[name] = np.empty(size, np.uint8)
        return memory[:size].view(dtype).reshape(shape)
