"""Where and in what precision the networks run: one vocabulary and one check for the node's parameters, every
CLI and training, so that a setting spelled for one of them means the same in all.

Reduced precision runs under ``torch.autocast`` (the weights stay float32; convolutions and matrix products run
in bf16 or fp16). torch is imported only where a dtype or a device object is needed, so the checks cost
nothing to the ROS parameter parsing or a CLI's ``--help``.
"""

from __future__ import annotations

import ctypes
import re
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16", "fp16")
DEVICE_HELP = "cpu, cuda or cuda:N"
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def check_precision(value: str, name: str = "precision") -> str:
    """``value`` when it is one of PRECISIONS; else ValueError naming the setting ``name``."""
    if value not in PRECISIONS:
        raise ValueError(f"{name}: expected one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


def check_amp(value: str | bool, name: str = "run.amp") -> str:
    """Training's mixed-precision setting: a precision, or the old spelling "off" (= fp32, deprecated), which an
    unquoted YAML ``off`` reads as False."""
    if value is False or value == "off":
        message = f"{name}: 'off' is deprecated, use 'fp32' (the old spelling goes in 0.2)"
        warnings.warn(message, FutureWarning, stacklevel=2)
        return "fp32"
    return check_precision(value, name)


def check_device(value: str, name: str = "device") -> str:
    """``value`` when it spells a device this package runs on (cpu, cuda, cuda:N); else ValueError naming
    ``name``. Whether CUDA is present is checked where the device is used (``torch_device``)."""
    if not isinstance(value, str) or not _DEVICE.fullmatch(value):
        raise ValueError(f"{name}: expected {DEVICE_HELP}, got {value!r}")
    return value


def torch_device(value: str, name: str = "device") -> torch.device:
    """The torch device of a checked spelling; ValueError when it names a GPU this machine does not have."""
    import torch

    device = torch.device(check_device(value, name))
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}: {value} requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{name}: {value} requested but only {torch.cuda.device_count()} GPU(s) are visible")
    return device


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a precision; None = float32 (autocast off)."""
    import torch

    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[check_precision(precision)]


def release_cached_memory(value: str) -> None:
    """Hands the memory that allocators keep after a model is dropped back to the system, so that a node that
    released its model holds none: torch's CUDA cache on a GPU, and glibc's heap, where freed weights otherwise
    stay from the second load on (glibc raises its mmap threshold after the first large free)."""
    if check_device(value).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
    trim_heap()


# glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HEAP_BLOCK_MAX = 32 << 20  # glibc's own ceiling for its sliding mmap threshold (DEFAULT_MMAP_THRESHOLD_MAX)


def keep_heap_for_reuse(max_block: int = HEAP_BLOCK_MAX) -> bool:
    """Has glibc serve blocks up to ``max_block`` bytes from its heap and keep freed heap for reuse instead of
    giving it back on its own (mallopt M_MMAP_THRESHOLD and M_TRIM_THRESHOLD); False where that is not glibc.

    By default glibc maps each block above a sliding threshold fresh and trims its heap's free top, so a node that
    receives and computes multi-megabyte arrays every frame pays the kernel to zero their pages again and again:
    ~40 % of the executor thread's and ~35 % of the worker's CPU under 5x input overload (perf, BENCHMARKS.md).
    Memory then stays at the working set's peak; :func:`trim_heap` still gives it back where that is wanted."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, max_block)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def trim_heap() -> None:
    """Returns the C library's free heap pages to the system (glibc's malloc_trim; elsewhere nothing to do).

    After a network's forward pass glibc keeps the freed activations, and from its first large free on it serves
    them from a heap whose resident size then wanders by tens of MB between frames. A long-running node trims
    after each such frame, so its memory stays at its working set (BENCHMARKS.md, soak)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's C library
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return
    trim(0)
