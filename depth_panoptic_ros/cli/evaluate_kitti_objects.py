"""`depth-panoptic evaluate-kitti-objects`: a model through the deployed pipeline on labeled KITTI object frames."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from depth_panoptic_ros.cli import CliError, add_device_arguments, add_panoptic_arguments, load_pipeline_of, warn


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate-kitti-objects",
        help="recall, precision and instance depth of vehicles and persons on KITTI object labels",
        description="Runs the pipeline (camera + LiDAR, as the node) on KITTI object frames (image_2, velodyne, "
        "calib, label_2) and scores the predicted vehicle and person segments as 2D detections at box IoU >= 0.5 "
        "on KITTI's easy / moderate / hard subsets, with the depth error of the matched ones. See "
        "docs/kitti_objects.md.",
    )
    p.add_argument("data", type=Path, help="KITTI object folder holding image_2/, velodyne/, calib/, label_2/")
    p.add_argument("--model", help="model .safetensors (default: the shipped model)")
    p.add_argument(
        "--config",
        type=Path,
        help="pipeline config YAML: the keys to change (all: config/pipeline.yaml)",
    )
    add_device_arguments(p)
    p.add_argument("--frames", nargs="+", metavar="ID", help="frame ids (file stems) to evaluate (default: all)")
    p.add_argument("--overlays", type=Path, help="folder for one overlay PNG per frame (labels and predictions)")
    p.add_argument("--overlay-level", default="moderate", choices=("easy", "moderate", "hard"))
    p.add_argument("--json", action="store_true", help="print totals and per-frame rows as JSON")
    add_panoptic_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.data.images import write_rgb
    from depth_panoptic_ros.data.kitti_objects import object_frame_ids
    from depth_panoptic_ros.evaluation.kitti_objects import evaluate_kitti_objects, format_report, summarize
    from depth_panoptic_ros.evaluation.kitti_overlay import draw_object_evaluation

    if args.model == "":
        raise CliError("--model '' (no model) has nothing to evaluate")
    try:
        available = object_frame_ids(args.data)
        unknown = sorted(set(args.frames or ()) - set(available))
        if unknown:
            raise ValueError(f"{args.data}: no complete frame {', '.join(unknown)}")
        pipeline = load_pipeline_of(args, args.model)
        warn(pipeline.settings_warning)
        if args.overlays is not None:
            args.overlays.mkdir(parents=True, exist_ok=True)
        results = []
        for item in evaluate_kitti_objects(pipeline, args.data, args.frames or available):
            results.append(item.result)
            if args.overlays is not None:
                image = draw_object_evaluation(
                    item.frame.rgb,
                    item.products.panoptic.ids,
                    pipeline.class_table,
                    item.labels,
                    item.result,
                    item.frame.camera.P,
                    args.overlay_level,
                )
                write_rgb(args.overlays / f"{item.result.frame_id}.png", image)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from exc
    summary = summarize(results)
    if args.json:
        print(json.dumps({**summary.to_dict(), "per_frame": [r.row() for r in results]}, indent=1))
    else:
        print(format_report(summary, results, args.overlay_level))
    return 0
