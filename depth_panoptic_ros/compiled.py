"""What the compiled numba kernels of the package share: their compile options and a fused multiply-add.

Why one place: every kernel reproduces the float arithmetic of the numpy / OpenCV code it replaces bit for bit,
and where that code rounds a * b + c once (OpenCV's vector code, OpenBLAS's dgemm on CPUs with FMA) the kernel
has to say so explicitly: numba contracts nothing into an FMA without fastmath.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic

# On-disk cache; the GIL released (the node's worker thread); no zero-divisor checks (numpy's semantics).
COMPILE = {"cache": True, "nogil": True, "error_model": "numpy"}


def _fused_multiply_add(dtype: types.Float):  # noqa: ANN202 (a numba intrinsic)
    @intrinsic
    def fma(typingctx, a, b, c):  # noqa: ARG001 (numba's signature)
        """a * b + c of ``dtype``, rounded once."""

        def codegen(context, builder, sig, args):  # noqa: ARG001
            return builder.fma(*args)

        return dtype(dtype, dtype, dtype), codegen

    return fma


fma32, fma64 = _fused_multiply_add(types.float32), _fused_multiply_add(types.float64)
