"""compiled.kernel: every kernel compiled for C-contiguous arrays and for any layout, each call taking the first
when it can."""

from __future__ import annotations

import numpy as np
import pytest
from numba import types

from depth_panoptic_ros.compiled import can_cache, kernel


@kernel(types.float64(types.Array(types.float64, 2, "A", readonly=True), types.float64[:]))
def _row_sums(values: np.ndarray, out: np.ndarray) -> float:
    """out[i]: the sum of row i; returns the total."""
    total = 0.0
    for i in range(values.shape[0]):
        out[i] = 0.0
        for j in range(values.shape[1]):
            out[i] += values[i, j]
        total += out[i]
    return total


@pytest.mark.skipif(not can_cache(), reason="without a numba cache the kernels are compiled for any layout only")
def test_both_compilations_have_the_signature_in_their_layouts() -> None:
    contiguous, any_layout = _row_sums.contiguous.signatures[0], _row_sums.any_layout.signatures[0]
    assert [a.layout for a in contiguous] == ["C", "C"] and [a.layout for a in any_layout] == ["A", "A"]
    assert not contiguous[0].mutable and not any_layout[0].mutable  # read-only arrays are taken by either


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda a: a, "contiguous"),
        (lambda a: a[1:3], "contiguous"),  # whole rows of a map: a contiguous view
        (lambda a: np.asfortranarray(a), "any_layout"),
        (lambda a: a[:, ::2], "any_layout"),
        (lambda a: np.broadcast_to(a[:1], a.shape), "any_layout"),
    ],
)
def test_calls_take_the_contiguous_compilation_when_every_array_is_contiguous(make, expected: str, monkeypatch) -> None:
    """The same sums through either compilation; C-contiguous arrays (read-only too) go to the contiguous one."""
    values = np.arange(24.0).reshape(4, 6)
    values = make(values)
    calls = []
    for name in ("contiguous", "any_layout"):
        compiled = getattr(_row_sums, name)
        monkeypatch.setattr(_row_sums, name, lambda *args, _f=compiled, _n=name: calls.append(_n) or _f(*args))
    out = np.empty(values.shape[0])
    assert _row_sums(values, out) == values.sum()
    np.testing.assert_array_equal(out, values.sum(axis=1))
    read_only = np.array(values)
    read_only.flags.writeable = False
    _row_sums(read_only if expected == "contiguous" else values, out)
    assert calls == [expected, expected]
