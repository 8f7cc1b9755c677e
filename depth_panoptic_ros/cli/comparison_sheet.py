"""`depth-panoptic comparison-sheet`: panoptic overlays of one or more models on frames of a KITTI raw drive."""

from __future__ import annotations

import argparse
from pathlib import Path

from depth_panoptic_ros.cli import CliError, add_device_arguments, add_panoptic_arguments, load_pipeline_of, warn


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "comparison-sheet",
        help="side-by-side panoptic overlays of models on a KITTI raw drive (before/after pictures)",
        description="Runs each model through the pipeline on frames of a KITTI raw drive (image_02/, "
        "velodyne_points/, calib.txt in the object format) and tiles the input and every model's panoptic "
        "overlay into one PNG, one row per frame.",
    )
    p.add_argument("data", type=Path, help="drive folder with image_02/, velodyne_points/ and calib.txt")
    p.add_argument("--model", action="append", required=True, help="model .safetensors (repeat to compare)")
    p.add_argument("--name", action="append", help="column title per --model (default: the file stem)")
    p.add_argument("--frames", nargs="+", metavar="ID", help="frame ids (file stems; default: first, middle, last)")
    p.add_argument("--scale", type=float, default=0.5, help="scale of every cell (default 0.5)")
    p.add_argument(
        "--config",
        type=Path,
        help="pipeline config YAML: the keys to change (all: config/pipeline.yaml)",
    )
    add_device_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="output PNG")
    add_panoptic_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.data.images import write_rgb
    from depth_panoptic_ros.data.kitti_raw import raw_frame_ids, read_raw_frame
    from depth_panoptic_ros.evaluation.comparison_sheet import comparison_sheet

    names = args.name or [Path(m).stem for m in args.model]
    if len(names) != len(args.model):
        raise CliError(f"--name given {len(names)} times for {len(args.model)} --model")
    if "" in args.model:
        raise CliError("--model '' (no model) has no panoptic output to show")
    try:
        available = raw_frame_ids(args.data)
        frame_ids = args.frames or sorted({available[0], available[len(available) // 2], available[-1]})
        unknown = sorted(set(frame_ids) - set(available))
        if unknown:
            raise ValueError(f"{args.data}: no frame {', '.join(unknown)}")
        pipelines = [(name, load_pipeline_of(args, model)) for name, model in zip(names, args.model, strict=True)]
        for name, pipeline in pipelines:
            if pipeline.settings_warning:
                warn(f"{name}: {pipeline.settings_warning}")
        frames = ((frame_id, read_raw_frame(args.data, frame_id)) for frame_id in frame_ids)
        sheet = comparison_sheet(frames, pipelines, args.scale)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_rgb(args.out, sheet)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from exc
    print(f"wrote {args.out} ({len(frame_ids)} frames x {len(pipelines)} models)")
    return 0
