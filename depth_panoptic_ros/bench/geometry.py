"""Per-stage timings of the geometry/products path at KITTI size and 1024x2048 on a reproducible scene.

The scene is built here (a ground plane, a building ring and box-shaped cars seen by a 64-beam LiDAR) so that
the benchmark needs no data set; sizes match the real sensors (~120k points per sweep).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.geometry.camera import CameraModel

if TYPE_CHECKING:
    from depth_panoptic_ros.frame import SensorFrame
    from depth_panoptic_ros.pipeline import Pipeline

SIZES = {"kitti": (375, 1242), "2k": (1024, 2048)}
# LiDAR (x forward, y left, z up) -> camera optical frame (z forward, x right, y down), 0.3 m above the camera.
T_CAM_LIDAR = np.array([[0, -1, 0, 0], [0, 0, -1, -0.3], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
# camera optical frame -> ground frame (x forward, y left, z up): the camera is 1.65 m above the ground (the LiDAR,
# 0.3 m above the camera, sees the ground 1.95 m below itself).
GROUND_T_CAM = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 1.65], [0, 0, 0, 1]], dtype=np.float64)


def lidar_sweep(beams: int = 64, azimuths: int = 1875, height: float = 1.95, wall: float = 35.0) -> np.ndarray:
    """(beams * azimuths, 4) points of a spinning LiDAR over a ground plane inside a cylindrical wall."""
    elevation = np.deg2rad(np.linspace(2.0, -24.8, beams))[:, None]
    azimuth = np.linspace(-np.pi, np.pi, azimuths, endpoint=False)[None, :]
    down = np.sin(-elevation)
    ground = np.where(down > 1e-3, height / np.maximum(down, 1e-3) * np.cos(elevation), np.inf)
    horizontal = np.minimum(ground, wall)  # horizontal distance of the first hit
    r = horizontal / np.cos(elevation)
    pts = np.stack(
        [
            (horizontal * np.cos(azimuth)).ravel(),
            (horizontal * np.sin(azimuth)).ravel(),
            np.broadcast_to(r * np.sin(elevation), (beams, azimuths)).ravel(),
            np.full(beams * azimuths, 0.5),
        ],
        axis=1,
    )
    return pts.astype(np.float32)


def scene(height: int, width: int) -> tuple[CameraModel, np.ndarray, np.ndarray]:
    """A KITTI-like camera scaled to the size, an RGB image, and panoptic ids with ~40 segments."""
    f = 721.5 * width / 1242
    K = np.array([[f, 0, width / 2], [0, f, height * 0.46], [0, 0, 1]])
    camera = CameraModel.from_matrices(width, height, K)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    ids = np.full((height, width), 7000, np.int32)  # road
    ids[: height // 2] = 11000  # building
    for i in range(30):  # cars
        y, x = rng.integers(height // 3, height - 40), rng.integers(0, width - 80)
        ids[y : y + rng.integers(20, 80), x : x + rng.integers(30, 160)] = 26000 + i + 1
    return camera, rgb, ids


# The stages of one frame as the node runs them (models aside); their sum is the per-frame CPU budget. The merge's
# give-back step (each instance's fragments, then the thing geometry check) is part of the networks' post-processing
# and is timed beside them (give_back).
FRAME_STAGES = (
    "projection",
    "completion",
    "ground",
    "instance_depth",
    "cloud",
    "bev_grid",
    "panoptic_color",
    "depth_color",
)


def run_geometry_benchmark(repeats: int = 10, sizes: dict[str, tuple[int, int]] = SIZES) -> dict:
    """Median milliseconds per stage and size, and their per-frame total; single-threaded OpenCV and numpy.

    Both wall time and the thread's CPU time: on a shared machine the wall time also counts the time other
    processes hold the core, the CPU time only this computation's own work (page faults included).
    """
    from depth_panoptic_ros.frame import SensorFrame
    from depth_panoptic_ros.pipeline import Pipeline

    one_thread()
    points, pipeline, table = lidar_sweep(), Pipeline(), ClassTable.cityscapes()
    result: dict = {"machine": machine(), "points": len(points), "repeats": repeats, "sizes": {}}
    for h, w in sizes.values():
        camera, rgb, ids = scene(h, w)
        frame = SensorFrame(rgb, camera, points, T_CAM_LIDAR, ground_T_camera=GROUND_T_CAM)
        result["sizes"][f"{h}x{w}"] = timed_stages(pipeline, frame, ids, table, repeats)
    return result


def timed_stages(pipeline: Pipeline, frame: SensorFrame, ids: np.ndarray, table: ClassTable, repeats: int) -> dict:
    """The frame's stages timed (each the median of ``repeats`` calls), and the frame total of FRAME_STAGES."""
    valid, stages = _stages(pipeline, frame, ids, table)
    timed = {stage: median_ms(fn, repeats) for stage, fn in stages.items()}
    stages_ms = {stage: wall for stage, (wall, _) in timed.items()}
    cpu_ms = {stage: cpu for stage, (_, cpu) in timed.items()}
    return {
        "valid_sparse_pixels": valid,
        "stages_ms": stages_ms,
        "stages_cpu_ms": cpu_ms,
        "frame_total_ms": sum(stages_ms[stage] for stage in FRAME_STAGES),
        "frame_total_cpu_ms": sum(cpu_ms[stage] for stage in FRAME_STAGES),
    }


def one_thread() -> None:
    """OpenCV without its thread pool: on a 2-core machine shared by others a pool only adds contention."""
    import cv2

    cv2.setNumThreads(1)


def _stages(
    pipeline: Pipeline, frame: SensorFrame, ids: np.ndarray, table: ClassTable
) -> tuple[int, dict[str, Callable[[], object]]]:
    """Each stage as the pipeline and the node's message building call it (the pipeline's own methods, its
    config), on ``frame`` with the panoptic map ``ids`` of classes ``table``.

    The node finds the map's segment runs once per frame (PanopticResult.runs); here the instance depth stage
    finds them, and the color images get fresh copies so that they find the outlines themselves. The cloud is
    packed into a fresh buffer, as the node packs it. The give-back step reads an owner map of the final map's
    instances (the merge's holds the candidates before the check): on the bench scene, whose rectangles all fail
    the check, its worst case; on a real frame's final map, its usual one (nothing fails, no fragments).
    """
    from dataclasses import replace

    import torch

    from depth_panoptic_ros.depth.classical import complete_depth
    from depth_panoptic_ros.geometry.pointcloud2 import pack_cloud
    from depth_panoptic_ros.panoptic.merge import MergeConfig, given_back
    from depth_panoptic_ros.products.bev_grid import BevProjector
    from depth_panoptic_ros.products.depth_colormap import colorize_depth, depth_colormap_panoptic
    from depth_panoptic_ros.products.instance_depth import instance_depth
    from depth_panoptic_ros.products.palette import overlay_panoptic
    from depth_panoptic_ros.products.segments import SegmentRuns

    camera, rgb, cfg = frame.camera, frame.rgb, pipeline.config
    sparse = pipeline.measured_depth(frame)
    dense = complete_depth(sparse, rgb, cfg.completion)
    runs = SegmentRuns.of(ids)
    instances = instance_depth(runs, dense, camera, table)
    cloud = pipeline.cloud(frame, dense, ids, table.label_divisor)
    projector = BevProjector(cfg.grid, table)
    check = pipeline.ground_check(frame, sparse, dense)[1]
    is_thing = table.is_thing[table.class_index(ids)]
    things = np.unique(ids[is_thing])  # one mask index per instance, as the merges' owner map holds them
    owner = torch.from_numpy(np.where(is_thing, np.searchsorted(things, ids), -1).astype(np.int32))
    classes = torch.from_numpy(table.class_index(things))
    stages: dict[str, Callable[[], object]] = {
        "projection": lambda: pipeline.measured_depth(frame),
        "completion": lambda: complete_depth(sparse, rgb, cfg.completion),
        "ground": lambda: pipeline.ground_check(frame, sparse, dense),
        # no ground, no check: the merges skip it
        "give_back": lambda: check is not None and given_back(owner, classes, table, MergeConfig(), check),
        "instance_depth": lambda: instance_depth(SegmentRuns.of(ids), dense, camera, table),
        "cloud": lambda: pack_cloud(pipeline.cloud(frame, dense, ids, table.label_divisor)),
        "bev_grid": lambda: projector(cloud, frame.ground_T_camera),
        "panoptic_color": lambda: overlay_panoptic(rgb, replace(runs), table),
        "depth_color": lambda: depth_colormap_panoptic(replace(runs), instances, table, rgb=rgb),
        "depth_colormap_infer_only": lambda: colorize_depth(dense),
    }
    return int((sparse > 0).sum()), stages


def median_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall milliseconds of ``fn`` and median CPU milliseconds of this thread."""
    fn()  # warm-up: first-call allocations and lazy imports are not per-frame costs
    wall, thread = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        wall.append((time.perf_counter() - start) * 1e3)
        thread.append((time.thread_time() - start_cpu) * 1e3)
    return float(np.median(wall)), float(np.median(thread))


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def format_table(result: dict) -> str:
    sizes = list(result["sizes"])
    stages = list(next(iter(result["sizes"].values()))["stages_ms"])
    header = " | ".join(f"{s} wall / CPU (ms)" for s in sizes)
    lines = [f"| stage | {header} |", "|---" * (len(sizes) + 1) + "|"]
    for stage in stages:
        row = " | ".join(
            f"{result['sizes'][s]['stages_ms'][stage]:.1f} / {result['sizes'][s]['stages_cpu_ms'][stage]:.1f}"
            for s in sizes
        )
        lines.append(f"| {stage} | {row} |")
    total = " | ".join(
        f"{result['sizes'][s]['frame_total_ms']:.1f} / {result['sizes'][s]['frame_total_cpu_ms']:.1f}" for s in sizes
    )
    lines.append(f"| **frame total** ({' + '.join(FRAME_STAGES)}) | {total} |")
    return "\n".join(lines)
