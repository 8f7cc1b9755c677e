"""`depth-panoptic pq`: panoptic quality of COCO-panoptic-format predictions, as panopticapi reports it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from depth_panoptic_ros.cli import CliError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pq",
        help="panoptic quality (PQ / SQ / RQ) of predictions in COCO panoptic format",
        description="Panoptic quality of COCO-panoptic-format predictions against ground truth (panopticapi rules).",
    )
    parser.add_argument("--gt-json", type=Path, required=True, help="ground-truth COCO panoptic JSON")
    parser.add_argument("--gt-folder", type=Path, required=True, help="folder of the ground-truth PNGs")
    parser.add_argument("--pred-json", type=Path, required=True, help="prediction COCO panoptic JSON")
    parser.add_argument("--pred-folder", type=Path, required=True, help="folder of the predicted PNGs")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (fractions) instead of a table")
    parser.add_argument("--workers", type=int, default=None, help="PNG decoding threads (default: one per CPU)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.evaluation.pq import format_table, pq_compute

    for option, path, want_dir in (
        ("--gt-json", args.gt_json, False),
        ("--gt-folder", args.gt_folder, True),
        ("--pred-json", args.pred_json, False),
        ("--pred-folder", args.pred_folder, True),
    ):
        if not (path.is_dir() if want_dir else path.is_file()):
            raise CliError(f"{option} {path}: no such {'folder' if want_dir else 'file'}")
    try:
        if args.workers is not None and args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        result = pq_compute(
            args.gt_json, args.pred_json, args.gt_folder, args.pred_folder, workers=args.workers, progress=True
        )
    except (OSError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
