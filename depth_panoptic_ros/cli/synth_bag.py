"""`depth-panoptic synth-bag`: a rosbag2 (mcap) of synthetic camera + LiDAR frames with /tf_static."""

from __future__ import annotations

import argparse
from pathlib import Path

from depth_panoptic_ros.cli import CliError, image_size
from depth_panoptic_ros.data.synthetic.presets import PRESETS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth-bag", help="write a rosbag2 of synthetic sensor frames", description=__doc__)
    p.add_argument("out", type=Path, help="output bag directory (must not exist)")
    p.add_argument("--frames", type=int, required=True, help="number of camera frames")
    p.add_argument("--preset", choices=PRESETS, default="kitti", help="camera rig (default: kitti)")
    p.add_argument("--size", type=image_size, help="image size HEIGHTxWIDTH (default: the preset's)")
    p.add_argument("--stereo", action="store_true", help="also a right camera (left/, right/ topics)")
    p.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default: 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.ros.bags.synthetic_bag import write_synthetic_bag

    try:
        size = args.size and args.size[::-1]  # the generator takes (width, height)
        bag = write_synthetic_bag(
            args.out, args.frames, preset=args.preset, stereo=args.stereo, rate_hz=args.rate, size=size, seed=args.seed
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc}") from exc
    print(f"wrote {bag.frames} synthetic frames to {bag.path}")
    return 0
