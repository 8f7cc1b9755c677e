"""`depth-panoptic bag process | play`: rosbag2 files through the pipeline offline, or published to ROS 2."""

from __future__ import annotations

import argparse
from pathlib import Path

from depth_panoptic_ros.cli import CliError, add_device_arguments, add_panoptic_arguments, load_pipeline_of, warn

_TOPIC_OPTIONS = ("image", "camera_info", "lidar", "right_image", "right_camera_info")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bag", help="process a rosbag2 offline, or play it to ROS 2")
    commands = p.add_subparsers(dest="bag_command", required=True, metavar="{process,play}")

    proc = commands.add_parser(
        "process",
        help="run the pipeline on every synchronized frame of a bag; write the node's outputs to a new bag",
        description="Reads a rosbag2 (mcap or sqlite3), runs the node's pipeline on each synchronized set and "
        "writes the node's output topics (input stamps, input record times) to a new mcap bag. Topics default to "
        "the node's input names (/image, /camera_info, /lidar; /left/..., /right/... for stereo) or the only "
        "topic of the right type.",
    )
    proc.add_argument("input", type=Path, help="input bag (directory, .mcap or .db3)")
    proc.add_argument("output", type=Path, help="output bag directory (must not exist)")
    proc.add_argument(
        "--config",
        type=Path,
        help="pipeline config YAML: the keys to change (all: config/pipeline.yaml)",
    )
    proc.add_argument("--model", help="model .safetensors (default: the shipped model; '' = classical depth only)")
    add_device_arguments(proc)
    add_panoptic_arguments(proc)
    for name in _TOPIC_OPTIONS:
        proc.add_argument(f"--{name.replace('_', '-')}-topic", dest=name, metavar="TOPIC")
    proc.add_argument(
        "--calib", type=Path, help="YAML or KITTI calibration whose T_cam_lidar is used when the bag's TF lacks it"
    )
    proc.add_argument("--slop", type=float, default=0.05, help="synchronization slop in seconds (default: 0.05)")
    proc.add_argument(
        "--grid-frame",
        default="base_link",
        help="ground frame of the bird's-eye grid, linked to the camera by the bag's TF (default: base_link)",
    )
    proc.add_argument("--export", type=Path, metavar="DIR", help="also write PNG/PLY/JSON per frame to DIR/NNNNNN/")
    proc.set_defaults(func=run_process)

    play = commands.add_parser(
        "play",
        help="publish a bag's topics with their recorded timing (no ros2 CLI needed)",
        description="Publishes a rosbag2 to ROS 2 at its record times scaled by --rate, like `ros2 bag play`: "
        "reliable/volatile/keep-last-10 QoS, transient local for topics recorded latched (/tf_static).",
    )
    play.add_argument("input", type=Path, help="bag (directory, .mcap or .db3)")
    play.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default: 1)")
    play.add_argument("--loop", action="store_true", help="start again at the end, until Ctrl-C")
    play.add_argument("--clock", action="store_true", help="publish the playback time on /clock (use_sim_time)")
    play.add_argument("--topics", nargs="+", metavar="TOPIC", help="only these topics (default: all)")
    play.add_argument(
        "--wait-for-subscribers",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds until every played topic has a subscriber (default: 0, start at once)",
    )
    play.set_defaults(func=run_play)


def run_process(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.products.files import write_products
    from depth_panoptic_ros.ros.bags.bag_process import process_bag

    topics = {name: getattr(args, name) for name in _TOPIC_OPTIONS if getattr(args, name) is not None}
    done = 0

    def after_frame(index, frame, products) -> None:
        nonlocal done
        done = index + 1  # its messages are in the output bag already
        if args.export is not None:
            write_products(args.export / f"{index:06d}", frame, products, pipeline.class_table)

    try:
        pipeline = load_pipeline_of(args, args.model)
        warn(pipeline.settings_warning)
        summary = process_bag(
            args.input, args.output, pipeline, topics=topics, calibration=args.calib, slop_s=args.slop,
            on_frame=after_frame, grid_frame=args.grid_frame,
        )  # fmt: skip
    except (ValueError, LookupError, OSError) as exc:
        raise CliError(str(exc)) from exc
    except KeyboardInterrupt:
        print(f"interrupted: {args.output} holds the outputs of {done} frame(s)")
        return 130
    if summary.frames == 0:
        reason = summary.first_error or "no synchronized image/LiDAR set (check the topics and --slop)"
        raise CliError(f"no frame processed out of {summary.images} image(s): {reason}")
    skipped = f", {summary.skipped} skipped (first: {summary.first_error})" if summary.skipped else ""
    for loss in summary.cut_short:
        print(f"{args.input}: {loss}; everything before the cut was processed")
    print(f"processed {summary.frames} of {summary.images} image(s){skipped}; wrote {args.output}")
    return 0


def run_play(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.ros.bags.bag_play import play_bag

    try:
        sent, skipped = play_bag(
            args.input, args.topics, rate=args.rate, loop=args.loop, clock=args.clock,
            wait_for_subscribers_s=args.wait_for_subscribers,
        )  # fmt: skip
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    skipped = f" (not played, type not installed: {', '.join(skipped)})" if skipped else ""
    print(f"published {sent} message(s) from {args.input}{skipped}")
    return 0
