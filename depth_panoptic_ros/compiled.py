"""What the compiled numba kernels of the package share: their compile options and a fused multiply-add.

Why one place: every kernel reproduces the float arithmetic of the numpy / OpenCV code it replaces bit for bit,
and where that code rounds a * b + c once (OpenCV's vector code, OpenBLAS's dgemm on CPUs with FMA) the kernel
has to say so explicitly: numba contracts nothing into an FMA without fastmath.
"""

from __future__ import annotations

import logging

import numba
from numba import types
from numba.extending import intrinsic


def _probe() -> None:
    """A function of the package's source tree: where numba can cache it, it can cache the kernels."""


def can_cache() -> bool:
    """Whether numba finds a writable cache directory (the package's __pycache__, ~/.cache/numba or
    NUMBA_CACHE_DIR). Without one, ``cache=True`` raises at decoration ("cannot cache function"), i.e. the package
    would not import, e.g. from a read-only install run by a user without a home directory."""
    try:
        numba.njit(cache=True)(_probe)
    except RuntimeError:
        return False
    return True


_CACHE = can_cache()
if not _CACHE:
    logging.getLogger(__name__).warning(
        "numba has no writable cache directory: the compiled kernels are compiled at every start (seconds); "
        "NUMBA_CACHE_DIR names one"
    )
# On-disk cache where possible; the GIL released (the node's worker thread); no zero-divisor checks (numpy's).
COMPILE = {"cache": _CACHE, "nogil": True, "error_model": "numpy"}


def _fused_multiply_add(dtype: types.Float):  # noqa: ANN202 (a numba intrinsic)
    @intrinsic
    def fma(typingctx, a, b, c):  # noqa: ARG001 (numba's signature)
        """a * b + c of ``dtype``, rounded once."""

        def codegen(context, builder, sig, args):  # noqa: ARG001
            return builder.fma(*args)

        return dtype(dtype, dtype, dtype), codegen

    return fma


fma32, fma64 = _fused_multiply_add(types.float32), _fused_multiply_add(types.float64)
