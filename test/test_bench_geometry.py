"""`bench geometry`: every per-frame stage is measured and the frame total is the sum of the node's stages, on the
built scene and on real KITTI frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from depth_panoptic_ros.bench.geometry import FRAME_STAGES, format_table, run_geometry_benchmark


def test_every_stage_is_timed_and_the_frame_total_adds_up() -> None:
    result = run_geometry_benchmark(repeats=1, sizes={"small": (120, 400)})
    size = result["sizes"]["120x400"]
    assert set(FRAME_STAGES) < set(size["stages_ms"]) and all(ms > 0 for ms in size["stages_ms"].values())
    assert size["frame_total_ms"] == pytest.approx(sum(size["stages_ms"][s] for s in FRAME_STAGES))
    assert "frame total" in format_table(result)


def test_a_real_frame_is_timed_with_the_shipped_models_map(kitti_object: Path) -> None:
    from depth_panoptic_ros.bench.geometry_kitti import format_kitti_table, run_kitti_geometry_benchmark

    result = run_kitti_geometry_benchmark(kitti_object, repeats=1, frames=["000000"])
    frame = result["frames"]["000000"]
    assert frame["runs"] > 1000 and frame["valid_sparse_pixels"] > 10_000  # a real map and sweep
    assert set(FRAME_STAGES) | {"give_back"} <= set(frame["stages_ms"])
    assert frame["frame_total_cpu_ms"] == pytest.approx(sum(frame["stages_cpu_ms"][s] for s in FRAME_STAGES))
    assert result["median"]["frame_total_ms"] == frame["frame_total_ms"]  # one frame: its own median
    table = format_kitti_table(result)
    assert "| 000000 |" in table and "**median**" in table


@pytest.mark.parametrize(
    ("folder", "frame_id"),
    [(("kitti", "object_testing"), "000002"), (("kitti", "raw_2011_09_26"), "0000000007")],
    ids=["unlabeled object folder", "raw drive"],
)
def test_unlabeled_frames_are_timed_like_labeled_ones(folder: tuple[str, ...], frame_id: str) -> None:
    """The bench needs no labels: KITTI's testing split and a raw drive's layout are real frames too."""
    from conftest import shared_data

    from depth_panoptic_ros.bench.geometry_kitti import kitti_sensor_frames, run_kitti_geometry_benchmark
    from depth_panoptic_ros.pipeline import load_pipeline

    root = shared_data(*folder)
    ids, read_frame = kitti_sensor_frames(root)
    assert frame_id in ids
    result = run_kitti_geometry_benchmark(root, repeats=1, frames=[frame_id])
    frame = result["frames"][frame_id]
    # The frame read is the frame timed: its sweep's projection has as many pixels as the pipeline's own.
    sparse = load_pipeline(None, None).measured_depth(read_frame(root, frame_id))
    assert frame["valid_sparse_pixels"] == int((sparse > 0).sum()) > 10_000
    assert frame["runs"] > 1000


def test_an_id_the_folder_lacks_is_named(kitti_object: Path) -> None:
    from depth_panoptic_ros.bench.geometry_kitti import run_kitti_geometry_benchmark

    with pytest.raises(ValueError, match="no frame 999999"):
        run_kitti_geometry_benchmark(kitti_object, repeats=1, frames=["000000", "999999"])


def test_the_cli_refuses_frames_without_kitti(capsys: pytest.CaptureFixture[str]) -> None:
    from depth_panoptic_ros.cli import main

    assert main(["bench", "geometry", "--frames", "000000"]) != 0
    assert "--kitti" in capsys.readouterr().err
