"""`depth-panoptic infer`: one frame from files through the pipeline, products written to a folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from depth_panoptic_ros.cli import CliError, add_device_arguments, add_panoptic_arguments, load_pipeline_of, warn


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="run the pipeline on one frame from files")
    p.add_argument("--image", required=True, type=Path, help="(left) camera image (PNG/JPEG)")
    p.add_argument("--right", type=Path, help="rectified right image for stereo depth")
    p.add_argument("--lidar", type=Path, help="LiDAR points: KITTI .bin or .npy (N x 3+)")
    p.add_argument("--calib", required=True, type=Path, help="KITTI calib .txt or calibration .yaml")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--model", help="model .safetensors (default: the shipped model; '' = none)")
    p.add_argument(
        "--config",
        type=Path,
        help="pipeline config YAML: the keys to change (all: config/pipeline.yaml)",
    )
    add_device_arguments(p, compile=True)
    p.add_argument("--no-panoptic", action="store_true", help="depth path only: no network")
    add_panoptic_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.data.calibration import load_any_calibration
    from depth_panoptic_ros.data.images import read_rgb
    from depth_panoptic_ros.data.kitti import read_points
    from depth_panoptic_ros.frame import SensorFrame
    from depth_panoptic_ros.products.files import write_products

    try:
        rgb = read_rgb(args.image)
        right = None if args.right is None else read_rgb(args.right)
        calib = load_any_calibration(args.calib, image_size=(rgb.shape[1], rgb.shape[0]))
        points = None if args.lidar is None else read_points(args.lidar)
        model = "" if args.no_panoptic else args.model
        pipeline = load_pipeline_of(args, model)
        warn(pipeline.settings_warning)
        if right is not None and calib.right_camera is None:
            raise ValueError(f"{args.calib}: --right needs a right camera (KITTI P3 or a `right:` block in YAML)")
        frame = SensorFrame(
            rgb=rgb,
            camera=calib.camera,
            points=points,
            T_cam_lidar=calib.T_cam_lidar,
            right_rgb=right,
            right_camera=calib.right_camera,
        )
        products = pipeline.run(frame)
        written = write_products(args.out, frame, products, pipeline.class_table)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from exc
    print(f"wrote {', '.join(sorted(written))} to {args.out}")
    return 0
