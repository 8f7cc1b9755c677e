"""`bench geometry --kitti DIR`: the per-frame stages of bench/geometry.py on real KITTI frames (an object folder,
labeled or not, or a raw drive).

Real panoptic maps are busier than the bench scene's (6–12 k segment runs at KITTI size against ~2 k) and real
sweeps put more points under the ground fit, so the budget is measured on them too. The panoptic ids are the
model's (the shipped one unless told), computed once per frame outside the timed stages; the bird's-eye grid
reads KITTI's mounting, the camera 1.65 m above a level road (GROUND_T_CAM), as the node reads its TF tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from depth_panoptic_ros.bench.geometry import FRAME_STAGES, GROUND_T_CAM, machine, one_thread, timed_stages

if TYPE_CHECKING:
    from depth_panoptic_ros.frame import SensorFrame


def kitti_sensor_frames(root: str | Path) -> tuple[list[str], Callable[[Path, str], SensorFrame]]:
    """The frame ids of ``root`` and their reader: a raw drive (calib.txt beside image_02, velodyne_points) or
    an object folder (image_2, velodyne, calib; labels not needed). ValueError when it is neither."""
    from depth_panoptic_ros.data.kitti_objects import SENSOR_PARTS, object_frame_ids, read_object_sensor_frame
    from depth_panoptic_ros.data.kitti_raw import raw_frame_ids, read_raw_frame

    if (Path(root) / "calib.txt").is_file():
        return raw_frame_ids(root), read_raw_frame
    return object_frame_ids(root, SENSOR_PARTS), read_object_sensor_frame


def run_kitti_geometry_benchmark(
    root: str | Path, repeats: int = 10, frames: Sequence[str] | None = None, model_path: str | None = None
) -> dict:
    """Per frame of the KITTI folder ``root`` (all, or ``frames``; kitti_sensor_frames): its stages timed as the
    bench scene's and their frame total, with the map's segment runs; and the median over the frames of each
    stage and of the totals. ValueError for a folder that is not a KITTI folder, an id it does not hold, or when
    no model loads."""
    from depth_panoptic_ros.pipeline import load_pipeline
    from depth_panoptic_ros.products.segments import SegmentRuns

    available, read_frame = kitti_sensor_frames(root)
    unknown = sorted(set(frames or ()) - set(available))
    if unknown:
        raise ValueError(f"{root}: no frame {', '.join(unknown)} (it holds {available[0]} .. {available[-1]})")
    ids_of_frames = list(frames) if frames else available
    pipeline = load_pipeline(None, model_path)
    if pipeline.model is None:
        raise ValueError("the real frames' panoptic maps need a model, and none is installed")
    one_thread()
    result: dict = {"machine": machine(), "data": str(root), "repeats": repeats, "frames": {}}
    for frame_id in ids_of_frames:
        frame = replace(read_frame(Path(root), frame_id), ground_T_camera=GROUND_T_CAM)
        ids = pipeline.run(frame, outputs={"panoptic"}).panoptic.ids
        row = timed_stages(pipeline, frame, ids, pipeline.class_table, repeats)
        result["frames"][frame_id] = {"runs": len(SegmentRuns.of(ids).start), **row}
    result["median"] = median_row(result["frames"].values())
    return result


def median_row(rows: Iterable[dict]) -> dict:
    """Each stage's median over the frames, and the median of their frame totals (not the sum of medians)."""
    rows = list(rows)

    def median(key: str) -> dict[str, float]:
        return {stage: float(np.median([row[key][stage] for row in rows])) for stage in rows[0][key]}

    return {
        "stages_ms": median("stages_ms"),
        "stages_cpu_ms": median("stages_cpu_ms"),
        "frame_total_ms": float(np.median([row["frame_total_ms"] for row in rows])),
        "frame_total_cpu_ms": float(np.median([row["frame_total_cpu_ms"] for row in rows])),
    }


def format_kitti_table(result: dict) -> str:
    """One row a frame (wall ms per stage, frame total as wall / CPU) and the median row."""
    stages = list(result["median"]["stages_ms"])
    lines = [f"| frame | runs | {' | '.join(stages)} | **frame total** wall / CPU |", "|---" * (len(stages) + 3) + "|"]
    rows = [(name, f"{row['runs']:,}", row) for name, row in result["frames"].items()]
    for name, runs, row in [*rows, ("**median**", "", result["median"])]:
        cells = " | ".join(f"{row['stages_ms'][stage]:.2f}" for stage in stages)
        total = f"{row['frame_total_ms']:.2f} / {row['frame_total_cpu_ms']:.2f}"
        lines.append(f"| {name} | {runs} | {cells} | {total} |")
    lines.append(f"\nframe total: {' + '.join(FRAME_STAGES)}")
    return "\n".join(lines)
