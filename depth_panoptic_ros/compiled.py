"""What the compiled numba kernels of the package share: their compile options, their signatures' layouts and a
fused multiply-add.

Why one place: every kernel reproduces the float arithmetic of the numpy / OpenCV code it replaces bit for bit,
and where that code rounds a * b + c once (OpenCV's vector code, OpenBLAS's dgemm on CPUs with FMA) the kernel
has to say so explicitly: numba contracts nothing into an FMA without fastmath.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from numba import types
from numba.core.typing import Signature
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


def kernel(*signatures: Signature) -> Callable[[Callable], Callable]:
    """numba.njit(signatures, **COMPILE) compiled twice: once with every array C-contiguous, once as given; each
    call takes the first when all its arrays are C-contiguous, else the second.

    Why: with a C-contiguous array LLVM knows the unit stride and vectorizes the loops over rows and points (5-25 %
    per kernel on the bench scenes, BENCHMARKS.md); the signatures as given take views and broadcast arrays. The
    choice is made in Python (~1 us): numba's own dispatch finds both equally good for a writable array. The two
    numba dispatchers are the attributes ``contiguous`` and ``any_layout`` of the returned function; without a
    cache directory (compiled.py's warning) they are one, for any layout."""

    def compile_twice(py_func: Callable) -> Callable:
        @functools.wraps(py_func)
        def call(*args: Any) -> Any:
            if all(a.flags.c_contiguous for a in args if isinstance(a, np.ndarray)):
                return call.contiguous(*args)
            return call.any_layout(*args)

        call.contiguous = call.any_layout = numba.njit(list(signatures), **COMPILE)(py_func)
        if _CACHE:  # without a cache every start compiles every kernel: then once, for any layout (half the time)
            call.contiguous = numba.njit([_contiguous(s) for s in signatures], **COMPILE)(py_func)
        return call

    return compile_twice


def _contiguous(signature: Signature) -> Signature:
    args = (a.copy(layout="C") if isinstance(a, types.Array) else a for a in signature.args)
    return signature.return_type(*args)


def _fused_multiply_add(dtype: types.Float):  # noqa: ANN202 (a numba intrinsic)
    @intrinsic
    def fma(typingctx, a, b, c):  # noqa: ARG001 (numba's signature)
        """a * b + c of ``dtype``, rounded once."""

        def codegen(context, builder, sig, args):  # noqa: ARG001
            return builder.fma(*args)

        return dtype(dtype, dtype, dtype), codegen

    return fma


fma32, fma64 = _fused_multiply_add(types.float32), _fused_multiply_add(types.float64)
