"""`depth-panoptic evaluate`: a model on a data split through the deployed pipeline (PQ, depth, merged instances)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from depth_panoptic_ros.cli import CliError, add_device_arguments, add_panoptic_arguments, warn


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="PQ / SQ / RQ, depth errors and merged instances of a model on a data split",
        description="Runs a model over a split of the training config's data set through the deployed pipeline and "
        "reports panoptic quality, depth errors (classical vs model) and merged instances.",
    )
    parser.add_argument("--config", required=True, type=Path, help="training config YAML (data set and pipeline)")
    parser.add_argument("--checkpoint", required=True, type=Path, help="model .safetensors or a checkpoint folder")
    parser.add_argument("--split", default="val", help="data split (default val)")
    parser.add_argument("--frames", type=int, help="evaluate the first N frames only")
    add_device_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON (fractions, mm, counts)")
    add_panoptic_arguments(parser)
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.synthetic.val_frames=20"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.model import load_model
    from depth_panoptic_ros.pipeline import Pipeline, bind_to_model
    from depth_panoptic_ros.training.config import load_train_config
    from depth_panoptic_ros.training.evaluate import evaluate, format_report
    from depth_panoptic_ros.typed_config import to_dict

    if args.frames is not None and args.frames < 1:
        raise CliError(f"--frames must be >= 1, got {args.frames}")
    checkpoint = args.checkpoint / "model.safetensors" if args.checkpoint.is_dir() else args.checkpoint
    try:
        config = load_train_config(args.config, args.overrides)
        model = load_model(checkpoint, device=args.device, precision=args.precision)
        if args.merge is not None:
            model.use_merge(args.merge)
        if args.min_thing_score is not None:
            model.use_min_thing_score(args.min_thing_score)
        samples = config.data.open(args.split)
        count = len(samples) if args.frames is None else min(args.frames, len(samples))
        # the training config's pipeline runs as given (as in training's validation); a change is still reported
        _, changed = bind_to_model(to_dict(config.pipeline), model.pipeline_settings)
        pipeline = Pipeline(config.pipeline, model, changed)
        warn(pipeline.settings_warning)
        result = evaluate(pipeline, (samples[i] for i in range(count)), progress=not args.json)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from exc
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_report(result, args.split))
    return 0
