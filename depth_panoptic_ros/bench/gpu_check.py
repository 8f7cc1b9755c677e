"""One device check for a GPU machine (scripts/gpu_check.sh): every figure BENCHMARKS.md needs, as one JSON block.

Needs PyTorch and CUDA, not ROS (the core never imports rclpy). Sections: ``bench model`` for the shipped model
and the paper-width R50 at KITTI size and 1024x2048 in every precision; the full pipeline (classical completion,
networks, products) per frame; the host-device copies of a frame; the instance depth statistics on the host and
on the device; training iterations per second of config/train_synthetic.yaml under AMP; the networks and the
pipeline replayed from CUDA graphs (fp32, fp16); a stream of frames one after the other against one ahead (the
next frame's CPU stages in a thread during this frame's networks: the node's look_ahead, at the pipeline level);
then compiled fp16 runs of the
pipeline and the networks while the time budget lasts. ``dry`` runs the same code at a tiny size in fp32 without
compilation (inductor takes minutes on a CPU) on any device, so that the script itself is tested where no GPU is.
"""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from depth_panoptic_ros.device import PRECISIONS
from depth_panoptic_ros.frame import SensorFrame
from depth_panoptic_ros.pipeline import Pipeline, Products

FULL_SIZES = ((375, 1242), (1024, 2048))
DRY_SIZE = (96, 160)
TRAIN_CONFIG = Path(__file__).resolve().parents[2] / "config" / "train_synthetic.yaml"


def run_gpu_check(device: str = "cuda", dry: bool = False, budget_s: float = 330.0, output: Path | None = None) -> dict:
    """The check's results; compiled runs that would start past ``budget_s`` seconds are listed under "skipped".

    A section that raises is recorded under "errors" and the others still run; with ``output`` the results so far
    are written there after every section, so a check cut short by its time limit keeps what it measured.
    """
    import torch

    from depth_panoptic_ros.resources import default_model_path

    started = time.perf_counter()
    sizes = (DRY_SIZE,) if dry else FULL_SIZES
    precisions = ("fp32",) if dry else PRECISIONS
    models = {"shipped": (str(default_model_path()), "r18"), "r50_paper": (None, "r50")}
    result: dict = {"device": device, "torch": torch.__version__, "dry": dry, "model": [], "skipped": [], "errors": {}}
    if torch.device(device).type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)

    def section(what: str, key: str, measure: Callable[..., object], *args: object, **kwargs: object) -> None:
        """Runs one measurement into result[key] (appended where that is a list)."""
        try:
            value = measure(*args, **kwargs)
            if isinstance(result[key], list):
                result[key].append(value)
            else:
                result[key] = value
        except Exception as error:  # one failed section must not lose the others' figures
            result["errors"][what] = f"{type(error).__name__}: {error}"
        finally:
            result["seconds"] = time.perf_counter() - started
            if output is not None:
                output.write_text(json.dumps(result, indent=1))

    # Every eager figure first (seconds each). Then the compiled runs (inductor takes one to two minutes per model at
    # its first frame), in the order of what issue 15.5's goals need: the shipped model's whole pipeline at KITTI
    # size, the paper R50 at 1024x2048, then the rest; those that would start past ``budget_s`` are skipped.
    repeats, frames, copies = (1, 1, 1) if dry else (5, 10, 20)
    result.update(pipeline=[], host_device_copies=[], instance_depth=[], training=None, lookahead=[])

    def model(name: str, size: tuple[int, int], precision: str, compile: bool = False, graph: bool = False) -> None:
        path, backbone = models[name]
        what = f"model {name} {size[0]}x{size[1]} {precision}{_mode(compile, graph)}"
        arguments = (name, size, backbone, device, precision)
        options = {"compile": compile, "cuda_graph": graph, "model_path": path}
        section(what, "model", _model_benchmark, *arguments, repeats=repeats, **options)

    def pipeline(size: tuple[int, int], precision: str, compile: bool = False, graph: bool = False) -> None:
        what = f"pipeline {size[0]}x{size[1]} {precision}{_mode(compile, graph)}"
        section(what, "pipeline", _pipeline_per_frame, device, size, precision, frames, compile, graph)

    for name, size, precision in itertools.product(models, sizes, precisions):
        model(name, size, precision)
    for size, precision in itertools.product(sizes, precisions):
        pipeline(size, precision)
    for size in sizes:
        section(f"copies {size}", "host_device_copies", _host_device_copies, device, size, copies)
        section(f"instance depth {size}", "instance_depth", _instance_depth_host_and_device, device, size, copies)
    result["ros_imported"] = "rclpy" in sys.modules  # the core runs without ROS
    section("training", "training", _training_speed, device, dry)
    cuda = torch.device(device).type == "cuda"
    if cuda:  # CUDA graphs: seconds each, no compilation
        for name, size, precision in itertools.product(models, sizes, ("fp32",) if dry else ("fp32", "fp16")):
            model(name, size, precision, graph=True)
        for size, precision in itertools.product(sizes, ("fp32",) if dry else ("fp32", "fp16")):
            pipeline(size, precision, graph=True)
    for size in sizes:  # the fastest setting measured so far: fp16 replayed from graphs
        stream = (device, size, "fp32" if dry else "fp16", frames, cuda)
        section(f"lookahead {size[0]}x{size[1]}", "lookahead", _pipeline_lookahead, *stream)
    kitti, large = FULL_SIZES
    compiled = [
        (pipeline, (kitti, "fp16")),
        (model, ("r50_paper", large, "fp16")),
        (model, ("shipped", kitti, "fp16")),
        (model, ("shipped", large, "fp16")),
        (pipeline, (large, "fp16")),
        (model, ("r50_paper", kitti, "fp16")),
    ]
    for run, arguments in [] if dry else compiled:
        if time.perf_counter() - started > budget_s:
            result["skipped"].append(f"{run.__name__} {' '.join(map(str, arguments))} compiled")
            continue
        run(*arguments, compile=True)
    return result


def _mode(compile: bool, graph: bool) -> str:
    return " compiled" if compile else " CUDA graph" if graph else ""


def _model_benchmark(name: str, *args: object, **kwargs: object) -> dict:
    """bench model's figures, under the model's name in this check."""
    from depth_panoptic_ros.bench.model import run_model_benchmark

    return {"name": name, **run_model_benchmark(*args, **kwargs)}


def _scene_frame(size: tuple[int, int]) -> SensorFrame:
    """bench/geometry's scene and LiDAR sweep as one camera + LiDAR frame of ``size``."""
    from depth_panoptic_ros.bench.geometry import T_CAM_LIDAR, lidar_sweep, scene

    camera, rgb, _ = scene(*size)
    return SensorFrame(rgb=rgb, camera=camera, points=lidar_sweep(), T_cam_lidar=T_CAM_LIDAR)


def _pipeline_per_frame(
    device: str, size: tuple[int, int], precision: str, repeats: int, compile: bool = False, graph: bool = False
) -> dict:
    """Median stage times of the whole per-frame pipeline with the shipped model on bench/geometry's scene."""
    from depth_panoptic_ros.pipeline import load_pipeline

    frame = _scene_frame(size)
    pipeline = load_pipeline(None, None, device, precision, compile=compile, cuda_graph=graph)
    start = time.perf_counter()
    pipeline.run(frame)  # warm-up (and compilation, or the graph's capture)
    first_ms = (time.perf_counter() - start) * 1e3
    runs = [pipeline.run(frame).timings_ms for _ in range(repeats)]
    stages = {stage: float(np.median([r[stage] for r in runs])) for stage in runs[0]}
    total = float(np.median([sum(r.values()) for r in runs]))
    return {"size": f"{size[0]}x{size[1]}", "precision": precision, "compile": compile, "cuda_graph": graph,
            "first_frame_ms": first_ms, "stages_ms": stages, "total_ms": total}  # fmt: skip


def one_ahead(pipeline: Pipeline, frames: Iterable[SensorFrame]) -> Iterator[Products]:
    """``pipeline.run`` of each frame, in order, with the next frame's measurement (Pipeline.measure: CPU kernels
    that release the GIL) running in a thread while the frame before it is finished (networks, products)."""
    with ThreadPoolExecutor(1, thread_name_prefix="measure") as pool:
        pending: tuple[SensorFrame, Future[Products]] | None = None
        for frame in frames:
            measuring = pool.submit(pipeline.measure, frame)
            if pending is not None:
                yield pipeline.finish(pending[0], pending[1].result())
            pending = (frame, measuring)
        if pending is not None:
            yield pipeline.finish(pending[0], pending[1].result())


def _pipeline_lookahead(device: str, size: tuple[int, int], precision: str, frames: int, graph: bool) -> dict:
    """Milliseconds per frame of a stream of ``frames`` frames of bench/geometry's scene through the whole
    pipeline with the shipped model, one after the other (Pipeline.run) and one ahead (one_ahead), two rounds each,
    alternately."""
    from depth_panoptic_ros.pipeline import load_pipeline

    frame = _scene_frame(size)
    pipeline = load_pipeline(None, None, device, precision, cuda_graph=graph)
    pipeline.run(frame)  # warm-up (and the graph's capture)

    def one_after_the_other() -> None:
        for _ in range(frames):
            pipeline.run(frame)

    def one_frame_ahead() -> None:
        for _ in one_ahead(pipeline, [frame] * frames):
            pass

    rounds: dict[str, list[float]] = {"sequential_ms": [], "lookahead_ms": []}
    for _ in range(2):
        for key, stream in (("sequential_ms", one_after_the_other), ("lookahead_ms", one_frame_ahead)):
            _synchronize(device)
            start = time.perf_counter()
            stream()
            _synchronize(device)
            rounds[key].append((time.perf_counter() - start) * 1e3 / frames)
    return {"size": f"{size[0]}x{size[1]}", "precision": precision, "cuda_graph": graph, "frames": frames, **rounds}


def _host_device_copies(device: str, size: tuple[int, int], repeats: int) -> dict:
    """Median ms of the copies between host and device of one frame with the model on ``device``, as
    DepthPanopticModel.predict makes them: the image, the sparse and the classical depth up; the panoptic ids
    down; the learned depth down only when it is served (pipeline learned_depth) or asked for."""
    import torch

    height, width = size
    inputs = [np.zeros((height, width, 3), np.uint8), np.zeros((height, width), np.float32)]
    inputs.append(inputs[1].copy())
    ids, depth = (torch.zeros(size, dtype=dtype, device=device) for dtype in (torch.int32, torch.float32))

    def timed(copy: Callable[[], object]) -> float:
        times = []
        for _ in range(repeats + 1):  # the first call (allocator, context) is not a per-frame cost
            _synchronize(device)
            start = time.perf_counter()
            copy()
            _synchronize(device)
            times.append((time.perf_counter() - start) * 1e3)
        return float(np.median(times[1:]))

    return {
        "size": f"{height}x{width}",
        "up_bytes": sum(a.nbytes for a in inputs),
        "up_ms": timed(lambda: [torch.from_numpy(a).to(device) for a in inputs]),
        "ids_down_bytes": ids.numel() * 4,
        "ids_down_ms": timed(lambda: ids.cpu().numpy()),
        "learned_depth_down_bytes": depth.numel() * 4,
        "learned_depth_down_ms": timed(lambda: depth.cpu().numpy()),
    }


def _instance_depth_host_and_device(device: str, size: tuple[int, int], repeats: int) -> dict:
    """Median ms of the instance depth statistics of bench/geometry's scene from the host kernel and from the ids
    on ``device`` (what Pipeline does for a GPU model; the depth goes up, the table comes down), and whether the
    two tables agree (counts, boxes and quantiles exactly, centroids to float32 rounding)."""
    import torch

    from depth_panoptic_ros.bench.geometry import T_CAM_LIDAR, lidar_sweep, scene
    from depth_panoptic_ros.classes import ClassTable
    from depth_panoptic_ros.depth.classical import complete_depth
    from depth_panoptic_ros.geometry.lidar import project_points
    from depth_panoptic_ros.products.instance_depth import instance_depth
    from depth_panoptic_ros.products.segments import SegmentRuns

    camera, rgb, ids = scene(*size)
    depth = complete_depth(project_points(lidar_sweep(), T_CAM_LIDAR, camera).depth, rgb)
    runs, table, device_ids = SegmentRuns.of(ids), ClassTable.cityscapes(), torch.from_numpy(ids).to(device)
    tables, times = {}, {}
    for where, on in (("host", None), ("device", device_ids)):
        elapsed = []
        for _ in range(repeats + 1):  # the first call (allocator, kernels' first launch) is not a per-frame cost
            _synchronize(device)
            start = time.perf_counter()
            tables[where] = instance_depth(runs, depth, camera, table, device_ids=on)
            elapsed.append((time.perf_counter() - start) * 1e3)
        times[where] = float(np.median(elapsed[1:]))
    host, on_device = tables["host"], tables["device"]
    exact = ("valid_count", "bbox", "depth_median", "depth_min", "depth_p10")
    equal = all(np.array_equal(getattr(host, f), getattr(on_device, f), equal_nan=True) for f in exact)
    close = np.allclose(host.centroid, on_device.centroid, rtol=2.5e-7, equal_nan=True)
    return {"size": f"{size[0]}x{size[1]}", "host_ms": times["host"], "device_ms": times["device"],
            "segments": len(host), "tables_agree": bool(equal and close)}  # fmt: skip


def _synchronize(device: str) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _training_speed(device: str, dry: bool) -> dict:
    """Iterations per second of the shipped training config under AMP (bf16; fp32 when dry: a CPU's bf16
    convolutions are slow), warm-up iterations excluded."""
    from depth_panoptic_ros.training.config import load_train_config
    from depth_panoptic_ros.training.distributed import DistributedContext, resolve_device
    from depth_panoptic_ros.training.loop import train

    first, iterations = (1, 3) if dry else (2, 40)
    amp = "fp32" if dry else "bf16"
    overrides = [f"run.device={device}", f"run.amp={amp}", "run.val_every=0", "run.checkpoint_every=0"]
    overrides += ["run.image_every=0", "run.log_every=1000"]
    if dry:
        overrides += ["data.synthetic.generator.size=[128, 64]", "augment.crop_size=[64, 128]", "run.num_workers=0"]
        overrides += ["model.panoptic.fusion=none", "run.batch_size=1", "augment.scale_range=[1, 1]"]
    context = DistributedContext(0, 1, 0, resolve_device(device))
    times = {}
    with tempfile.TemporaryDirectory() as out:
        # The difference of two runs removes start-up, data-loader spawn and first steps; a run before both pays
        # the process's one-time costs (imports, compilation, kernels' autotuning), which would flatter the rate.
        for run, count in enumerate((first, first, iterations)):
            config = load_train_config(TRAIN_CONFIG, [*overrides, f"run.max_iters={count}"])
            start = time.perf_counter()
            train(config, Path(out) / str(run), context, progress=False)
            times[count] = time.perf_counter() - start
    return {
        "config": "config/train_synthetic.yaml",
        "amp": amp,
        "iterations": iterations - first,
        "iterations_per_s": (iterations - first) / max(times[iterations] - times[first], 1e-9),
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dry", action="store_true", help="tiny sizes, fp32 only: checks the script on any machine")
    parser.add_argument(
        "--budget",
        type=float,
        default=330.0,
        help="seconds after which no compiled run starts (default 330: the last one ends within 8 minutes)",
    )
    parser.add_argument("--output", type=Path, help="also write the results there, after every section")
    args = parser.parse_args(argv)
    print(json.dumps(run_gpu_check(args.device, args.dry, args.budget, args.output), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
