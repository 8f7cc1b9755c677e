"""`bench geometry`: every per-frame stage is measured and the frame total is the sum of the node's stages."""

from __future__ import annotations

import pytest

from depth_panoptic_ros.bench.geometry import FRAME_STAGES, format_table, run_geometry_benchmark


def test_every_stage_is_timed_and_the_frame_total_adds_up() -> None:
    result = run_geometry_benchmark(repeats=1, sizes={"small": (120, 400)})
    size = result["sizes"]["120x400"]
    assert set(FRAME_STAGES) < set(size["stages_ms"]) and all(ms > 0 for ms in size["stages_ms"].values())
    assert size["frame_total_ms"] == pytest.approx(sum(size["stages_ms"][s] for s in FRAME_STAGES))
    assert "frame total" in format_table(result)
