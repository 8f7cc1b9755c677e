"""trim_heap gives the C library's freed heap back to the system (what the node does after each model frame)."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

try:
    ctypes.CDLL(None).malloc_trim  # noqa: B018 - glibc only
except (OSError, AttributeError):
    pytest.skip("not glibc: nothing to trim", allow_module_level=True)

SCRIPT = """
import ctypes, sys
from depth_panoptic_ros.device import trim_heap
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
libc.free(libc.malloc(16 << 20))  # a large free raises glibc's mmap threshold, as a network's first frame does
blocks = [libc.malloc(1 << 20) for _ in range(200)]  # 1 MB blocks now come from the heap
for b in blocks:
    ctypes.memset(b, 1, 1 << 20)
keep = libc.malloc(1 << 20)  # in use above them: the heap's top cannot shrink by itself
for b in blocks:
    libc.free(b)
before = rss_mb()
if sys.argv[1] == "trim":
    trim_heap()
print(before, rss_mb())
"""


@pytest.mark.parametrize("trim", [True, False])
def test_trim_heap_returns_freed_heap_pages(trim: bool) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, "trim" if trim else "keep"], capture_output=True, text=True, check=True
    ).stdout
    before, after = map(float, out.split())
    if trim:
        assert before - after > 150, (before, after)  # most of the 200 MB freed
    else:
        assert abs(before - after) < 5, (before, after)  # glibc alone keeps it: what the trim is for
