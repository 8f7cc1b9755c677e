"""`depth-panoptic demo`: the node end to end over ROS 2 on a synthetic bag; outputs recorded, previews saved."""

from __future__ import annotations

import argparse
from pathlib import Path

from depth_panoptic_ros.cli import CliError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the node on a synthetic bag over ROS 2 and save previews", description=__doc__)
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default: out/demo)")
    p.add_argument("--frames", type=int, default=12, help="synthetic frames to play (default: 12)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.ros.demo.demo import run_demo

    try:
        summary = run_demo(args.out, args.frames)
    except (ValueError, OSError, RuntimeError) as exc:
        raise CliError(str(exc)) from exc
    print(summary.line())
    return 0 if summary.frames_out else 1
