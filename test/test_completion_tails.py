"""The causes the completion benchmark assigns to large errors, on a hand-built scene, and the error breakdown."""

from __future__ import annotations

import numpy as np
import pytest

from depth_panoptic_ros.bench.completion_tails import CAUSES, error_causes, error_map, top_error_breakdown


def scene() -> tuple[np.ndarray, np.ndarray]:
    """Inputs on every 4th row: 20 m left of column 20, 50 m from it on; column 10 has none on row 0."""
    sparse = np.zeros((12, 30), np.float32)
    sparse[::4, :20], sparse[::4, 20:] = 20.0, 50.0
    sparse[0, 10] = 0
    reference = np.zeros_like(sparse)
    for (row, col), depth in {
        (2, 5): 20.0,  # the surface the inputs show: other
        (2, 6): 10.0,  # nearer than the inputs above and below: thin structure
        (2, 7): 30.0,  # behind the inputs around it: parallax
        (2, 25): 50.0,  # far range
        (2, 18): 20.0,  # inputs of 20 and 50 m within 4 px: depth edge
        (2, 10): 20.0,  # above its column's top input (row 4): above top ring
    }.items():
        reference[row, col] = depth
    return sparse, reference


def test_each_error_gets_its_first_cause() -> None:
    sparse, reference = scene()
    causes = error_causes(sparse, reference)
    expected = {(2, 5): "other", (2, 6): "thin structure", (2, 7): "parallax", (2, 25): "far range"}
    expected |= {(2, 18): "depth edge", (2, 10): "above top ring"}
    assert {pixel: CAUSES[causes[pixel]] for pixel in expected} == expected


def test_breakdown_shares_and_error_map() -> None:
    sparse, reference = scene()
    dense = np.where(reference > 0, reference, 0)
    dense[2, 25] = 60.0  # the only error, 10 m, on the far pixel
    causes = error_causes(sparse, reference)
    breakdown = top_error_breakdown(dense, reference, causes, share=0.1)  # the top 1 of 6 scored pixels
    assert breakdown["far range"] == pytest.approx({"pixels": 1.0, "squared_error": 1.0})
    assert sum(b["pixels"] for b in top_error_breakdown(dense, reference, causes, share=0.5).values()) == 1.0
    image = error_map(np.zeros((12, 30, 3), np.uint8), dense, reference, max_error_m=10.0)
    assert tuple(image[2, 25]) == (0, 0, 128) and tuple(image[2, 5]) == (128, 0, 0)  # JET: red at max, blue at 0
