"""`depth-panoptic synth`: write a labeled synthetic data set (Cityscapes layout, KITTI-style LiDAR)."""

from __future__ import annotations

import argparse
from pathlib import Path

from depth_panoptic_ros.cli import CliError, image_size
from depth_panoptic_ros.data.synthetic.presets import PRESETS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("synth", help=__doc__.split(": ", 1)[1], description=__doc__.split(": ", 1)[1])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--frames", type=int, required=True, help="number of frames")
    parser.add_argument("--preset", choices=PRESETS, default="kitti", help="camera rig (default: kitti)")
    parser.add_argument("--size", type=image_size, help="image size HEIGHTxWIDTH (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0, help="data set seed (default: 0)")
    parser.add_argument("--split", default="train", help="split name (default: train)")
    parser.add_argument("--stereo", action=argparse.BooleanOptionalAction, default=True, help="render the right view")
    parser.add_argument("--lidar", action=argparse.BooleanOptionalAction, default=True, help="simulate the LiDAR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.data.synthetic.config import SyntheticConfig
    from depth_panoptic_ros.data.synthetic.export import export_cityscapes

    try:
        config = SyntheticConfig(
            preset=args.preset, size=args.size and args.size[::-1], seed=args.seed, stereo=args.stereo, lidar=args.lidar
        )
        out = export_cityscapes(args.out, config, args.frames, args.split, progress=True)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"cannot write to {args.out}: {exc}") from exc
    print(f"wrote {args.frames} synthetic frames to {out}")
    return 0
