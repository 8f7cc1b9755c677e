"""The node's heap settings: trim_heap gives the C library's freed heap back to the system (what the node does after
each model frame); keep_heap_for_reuse makes frame after frame of multi-megabyte arrays reuse the heap instead of
faulting fresh pages in (what the node sets at start)."""

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


def run_script(script: str, argument: str) -> list[str]:
    """The words a script prints, run in a fresh interpreter (heap settings are per process)."""
    return subprocess.run(
        [sys.executable, "-c", script, argument], capture_output=True, text=True, check=True
    ).stdout.split()


@pytest.mark.parametrize("trim", [True, False])
def test_trim_heap_returns_freed_heap_pages(trim: bool) -> None:
    before, after = map(float, run_script(SCRIPT, "trim" if trim else "keep"))
    if trim:
        assert before - after > 150, (before, after)  # most of the 200 MB freed
    else:
        assert abs(before - after) < 5, (before, after)  # glibc alone keeps it: what the trim is for


FRAMES = """
import resource, sys, threading
import numpy as np
from depth_panoptic_ros.device import keep_heap_for_reuse
if sys.argv[1] == "reuse":
    assert keep_heap_for_reuse()
sizes = [1_397_000, 1_924_000, 3_726_000, 7_452_000, 1_863_000]  # a KITTI image, cloud, float64 maps, ...
faults = []
def frames():  # in a thread, as the node's worker and executor: glibc gives each its own arena
    for i in range(40):
        if i == 10:  # after the first frames, when the working set is known
            faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt)
        arrays = [np.ones(size // 8) for size in sizes] + [bytes(size) for size in sizes[:2]]
        del arrays
    faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt)
thread = threading.Thread(target=frames)
thread.start()
thread.join()
print(faults[1] - faults[0], 30 * (sum(sizes) + sum(sizes[:2])) // 4096)
"""


@pytest.mark.parametrize("reuse", [True, False])
def test_keep_heap_for_reuse_stops_page_faults_frame_after_frame(reuse: bool) -> None:
    faults, pages = map(int, run_script(FRAMES, "reuse" if reuse else "default"))
    if reuse:
        assert faults < 0.01 * pages, (faults, pages)
    else:
        assert faults > 0.3 * pages, (faults, pages)  # glibc's defaults: most pages fresh every frame
