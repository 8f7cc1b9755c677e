"""`depth-panoptic bench`: speed and accuracy benchmarks whose results go into BENCHMARKS.md."""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

from depth_panoptic_ros.cli import add_device_arguments, image_size


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (results for BENCHMARKS.md)")
    which = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    geo = which.add_parser("geometry", help="per-stage times of projection, completion, products")
    geo.add_argument("--repeats", type=int, default=10)
    geo.add_argument("--json", action="store_true", help="print JSON instead of a table")
    geo.add_argument(
        "--kitti",
        type=Path,
        metavar="DIR",
        help="instead of the built scene: the real frames of this KITTI folder (an object folder: image_2, velodyne, "
        "calib, labels not needed; or a raw drive: image_02, velodyne_points, calib.txt), with the model's panoptic "
        "maps computed outside the timed stages",
    )
    geo.add_argument("--frames", nargs="+", metavar="ID", help="with --kitti: only these frames (default: all)")
    geo.add_argument("--model", help="with --kitti: the model of the panoptic maps (default: the shipped model)")
    geo.set_defaults(func=_geometry)
    comp = which.add_parser(
        "completion", help="classical completion vs IP-Basic on real KITTI: LiDAR hold-out and ring-geometry input"
    )
    comp.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data/kitti"),
        help="folder holding object/, object_testing/, raw_2011_09_26/ and depth_demo/ (any of them)",
    )
    comp.add_argument(
        "--lofo", action="store_true", help="leave-one-frame-out figures over a parameter grid (minutes) instead"
    )
    comp.add_argument(
        "--tails",
        type=Path,
        metavar="DIR",
        help="instead: the top 1 %% errors by cause, and per-frame error-map PNGs written to DIR",
    )
    comp.add_argument(
        "--model",
        type=Path,
        help="also score this model's learned completion against the classical completion it refines",
    )
    comp.add_argument("--json", action="store_true")
    comp.set_defaults(func=_completion)
    pq = which.add_parser("pq", help="pq_compute beside hotcoco on a 1024x2048 COCO panoptic pair")
    pq.add_argument("--repeats", type=int, default=10)
    pq.add_argument("--json", action="store_true")
    pq.set_defaults(func=_pq)
    model = which.add_parser("model", help="per-stage network times, peak memory, parameters")
    model.add_argument("--size", type=image_size, default=(512, 1024), help="HEIGHTxWIDTH of the input")
    model.add_argument("--backbone", default="r18", choices=("r18", "r34", "r50"))
    model.add_argument("--fusion", default="mean", choices=("mean", "concat", "none"))
    model.add_argument("--model", help="time this model file (its architecture) instead of an untrained --backbone")
    add_device_arguments(model, compile=True)
    model.add_argument("--repeats", type=int, default=3)
    model.add_argument("--json", action="store_true")
    model.set_defaults(func=_model)
    node = which.add_parser(
        "node",
        help="soak or overload the node over real DDS: latency over time, drops, RSS slope, threads",
        description="Starts depth_panoptic_node in its own process and publishes one frame to it at --rate for "
        "--soak minutes; prints latency percentiles, sets answered and dropped, RSS and threads per time window, "
        "and the RSS slope over the run.",
    )
    node.add_argument("--soak", type=float, required=True, metavar="MIN", help="duration in minutes")
    node.add_argument("--rate", type=float, required=True, metavar="HZ", help="input sets per second")
    node.add_argument("--model", default=None, help="model .safetensors (default: the shipped model; '' = classical)")
    node.add_argument("--device", default="cpu")
    node.add_argument("--kitti", type=Path, metavar="DIR", help="KITTI object folder: use its frame 000001")
    node.add_argument("--size", type=image_size, help="HEIGHTxWIDTH of the synthetic frame (default: 375x1242)")
    node.add_argument("--window", type=float, metavar="S", help="seconds per reported window (default: MIN*3, >= 10)")
    node.add_argument("--log", type=Path, help="write the node's log here")
    node.add_argument(
        "--dds-profile",
        metavar="XML",
        help="Fast DDS profile of both processes ('' = Fast DDS's default transports; default: the environment's "
        "FASTDDS_DEFAULT_PROFILES_FILE or FASTDDS_BUILTIN_TRANSPORTS when set, else the package's large-data "
        "profile, as docs/node.md asks of every process exchanging full-size messages)",
    )
    node.add_argument("--json", action="store_true")
    node.set_defaults(func=_node)


def _geometry(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.bench.geometry import format_table, run_geometry_benchmark
    from depth_panoptic_ros.bench.geometry_kitti import format_kitti_table, run_kitti_geometry_benchmark
    from depth_panoptic_ros.cli import CliError

    if args.kitti is None:
        if args.frames or args.model:
            raise CliError("--frames and --model go with --kitti")
        result, table = run_geometry_benchmark(args.repeats), format_table
    else:
        try:
            result = run_kitti_geometry_benchmark(args.kitti, args.repeats, args.frames, args.model)
        except (ValueError, OSError) as error:
            raise CliError(str(error)) from None
        table = format_kitti_table
    print(json.dumps(result, indent=1) if args.json else f"{result['machine']}\n\n{table(result)}")
    return 0


def _completion(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.bench.completion import format_table, run_completion_benchmark
    from depth_panoptic_ros.bench.completion_tuning import format_lofo, leave_one_frame_out
    from depth_panoptic_ros.cli import CliError

    if not args.data.is_dir():
        raise CliError(f"{args.data}: no such folder (expects KITTI object/, raw_2011_09_26/ or depth_demo/ inside)")
    from depth_panoptic_ros.bench.completion_tails import format_tails, run_tails

    if args.tails is not None:
        run, table = (lambda data: run_tails(data, args.tails)), format_tails
    elif args.lofo:
        run, table = leave_one_frame_out, format_lofo
    else:
        run, table = run_completion_benchmark, format_table
    if args.model is not None:
        if args.lofo or args.tails is not None:
            raise CliError("--model goes with the plain benchmark, not with --lofo or --tails")
        from depth_panoptic_ros.model import CheckpointError, load_model

        try:
            model = load_model(args.model)
        except CheckpointError as error:
            raise CliError(str(error)) from None
        run = functools.partial(run_completion_benchmark, model=model)
    try:
        result = run(args.data)
    except ValueError as error:
        raise CliError(str(error)) from None
    print(json.dumps(result, indent=1) if args.json else table(result))
    return 0


def _pq(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.bench.pq import format_table, run_pq_benchmark

    result = run_pq_benchmark(args.repeats)
    print(json.dumps(result, indent=1) if args.json else format_table(result))
    return 0


def _model(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.bench.model import format_table, run_model_benchmark
    from depth_panoptic_ros.cli import CliError

    try:
        result = run_model_benchmark(
            args.size,
            args.backbone,
            args.device,
            args.precision,
            args.fusion,
            args.repeats,
            args.compile,
            args.model,
            cuda_graph=args.cuda_graph,
        )
    except ValueError as exc:  # e.g. --cuda-graph off CUDA, or with --compile
        raise CliError(str(exc)) from exc
    print(json.dumps(result, indent=1) if args.json else format_table(result))
    return 0


def _node(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.cli import CliError
    from depth_panoptic_ros.ros.runtime.parameters import DEFAULT_MODEL_PATH
    from depth_panoptic_ros.ros.runtime.soak import WINDOW_HEADER, format_summary, format_window, run_soak, soak_frame

    try:
        frame = soak_frame(args.kitti, args.size and args.size[::-1])
        if not args.json:
            print(WINDOW_HEADER, flush=True)
        result = run_soak(
            frame,
            args.soak,
            args.rate,
            DEFAULT_MODEL_PATH if args.model is None else args.model,
            device=args.device,
            window_s=args.window,
            log_path=args.log,
            progress=None if args.json else lambda w: print(format_window(w), flush=True),
            dds_profile=args.dds_profile,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise CliError(str(exc)) from exc
    print(json.dumps(result, indent=1) if args.json else format_summary(result))
    return 0
