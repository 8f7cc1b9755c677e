"""`depth-panoptic-train`: train a model from a config file, compute input statistics, release a trained model.

    depth-panoptic-train [train] --config CONFIG [--max-iters N] [--output-dir DIR] [--resume DIR|auto] [key=value ...]
    depth-panoptic-train stats --config CONFIG [--frames N] [key=value ...]
    depth-panoptic-train release --config CONFIG --checkpoint RUN|FILE --out FILE [--frames N]
        [--merge-head FILE] [--merge fcn|degeus|learned] [--min-thing-score-by-class CLASS=SCORE ...]
        [key=value ...]

The subcommands follow `depth-panoptic`'s pattern (``add_parser`` registers them, each sets ``func``); ``train``
is the default, so ``depth-panoptic-train --config ...`` trains. Several processes:
``torchrun --nproc_per_node N $(which depth-panoptic-train) --config ...``. This entrypoint never imports rclpy,
so it runs on machines without ROS.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from depth_panoptic_ros.cli import CliError, run_reporting_errors

if TYPE_CHECKING:
    from depth_panoptic_ros.training.config import TrainConfig

PROG = "depth-panoptic-train"
SUBCOMMANDS = ("train", "stats", "release")


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="training config YAML (see config/train_*.yaml)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides with dotted keys, e.g. optimizer.lr=0.01"
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train",
        help="train a model (the default subcommand)",
        description="train a model from a config file",
        epilog=f"{PROG} stats -h: statistics; {PROG} release -h: release a trained model",
    )
    _add_config_arguments(train)
    train.add_argument("--max-iters", type=int, help="override run.max_iters")
    train.add_argument("--output-dir", type=Path, help="run folder (default runs/<config name>)")
    train.add_argument("--resume", metavar="DIR|auto", help="continue a checkpoint folder, a run folder, or 'auto'")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train)

    stats = sub.add_parser(
        "stats",
        help="input statistics for model.normalization",
        description="RGB and depth mean / std over the training split, printed as YAML for the config's "
        "model.normalization (depth over valid pixels of the networks' input depth only)",
    )
    _add_config_arguments(stats)
    stats.add_argument("--frames", type=int, help="use the first N frames only (default: all)")
    stats.set_defaults(func=run_stats)

    release = sub.add_parser(
        "release",
        help="store a trained model with its evaluation",
        description="store a trained model in fp16 with its evaluation on the first N validation frames in its header",
    )
    _add_config_arguments(release)
    release.add_argument("--checkpoint", required=True, type=Path, help="run folder or model .safetensors")
    release.add_argument("--out", required=True, type=Path, help="released model file, e.g. models/default.safetensors")
    release.add_argument("--frames", type=int, default=20, help="validation frames to evaluate (default 20)")
    release.add_argument(
        "--merge-head",
        type=Path,
        metavar="FILE",
        help="graft the learned merge head of this model file onto the checkpoint (e.g. a head trained on an "
        "earlier release of the same networks)",
    )
    release.add_argument("--merge", metavar="{fcn,degeus,learned}", help="the merge the released model stores")
    release.add_argument(
        "--min-thing-score-by-class",
        nargs="*",
        metavar="CLASS=SCORE",
        help="the per-class thing score cuts the released model stores, replacing the file's (none given: none)",
    )
    release.set_defaults(func=run_release)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    add_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def _config(path: Path, overrides: Sequence[str]) -> TrainConfig:
    from depth_panoptic_ros.training.config import load_train_config

    try:
        return load_train_config(path, overrides)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def run_train(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.training.distributed import distributed_session
    from depth_panoptic_ros.training.loop import train

    config = _config(args.config, args.overrides)
    if args.max_iters is not None:
        try:
            config = replace(config, run=replace(config.run, max_iters=args.max_iters))
        except ValueError as exc:
            raise CliError(f"--max-iters: {exc}") from exc
    output_dir = args.output_dir or Path("runs") / args.config.stem
    try:
        with distributed_session(config.run.device) as context:
            result = train(config, output_dir, context, args.resume, progress=not args.quiet)
    except (ValueError, OSError, FloatingPointError) as exc:  # FloatingPointError: too many non-finite steps
        raise CliError(str(exc)) from exc
    if result.model_path is not None:
        skipped = f" ({result.skipped_steps} skipped: non-finite gradients)" if result.skipped_steps else ""
        print(f"trained {result.iterations} iterations{skipped}; model written to {result.model_path}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    import yaml

    from depth_panoptic_ros.training.statistics import normalization_statistics

    config = _config(args.config, args.overrides)
    try:
        samples = config.data.open("train")
        count = len(samples) if args.frames is None else min(args.frames, len(samples))
        if count < 1:
            raise CliError("no frames to compute statistics over")
        statistics = normalization_statistics((samples[i] for i in range(count)), config)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from exc
    print(f"# {count} frames of {config.data.name} train; paste into {args.config}")
    print(yaml.safe_dump({"model": {"normalization": statistics}}, default_flow_style=None, sort_keys=False), end="")
    return 0


def run_release(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.training.evaluate import format_report
    from depth_panoptic_ros.training.release import release_model

    config = _config(args.config, args.overrides)
    trained = args.checkpoint / "model.safetensors" if args.checkpoint.is_dir() else args.checkpoint
    provenance = {"release": {"config": str(args.config), "overrides": list(args.overrides), "source": str(trained)}}
    if args.merge_head is not None:
        provenance["release"]["merge_head"] = str(args.merge_head)
    try:
        cuts = None if args.min_thing_score_by_class is None else _class_scores(args.min_thing_score_by_class)
        result = release_model(
            trained,
            args.out,
            config,
            provenance,
            "val",
            args.frames,
            merge_head=args.merge_head,
            merge=args.merge,
            min_thing_score_by_class=cuts,
        )
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from exc
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MB)\n{format_report(result, 'val')}")
    return 0


def _class_scores(pairs: Sequence[str]) -> dict[str, float]:
    """["car=0.35", ...] -> {"car": 0.35, ...}; ValueError naming a malformed pair (the model checks the rest)."""
    scores = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            score = float(value)
        except ValueError:
            score = None
        if not name or score is None:
            raise ValueError(f"--min-thing-score-by-class takes CLASS=SCORE pairs (car=0.35), got {pair!r}")
        scores[name] = score
    return scores


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv[:1] or argv[0] not in SUBCOMMANDS:
        argv.insert(0, "train")  # `depth-panoptic-train --config ...` trains, as before the subcommands
    args = build_parser().parse_args(argv)
    return run_reporting_errors(f"{PROG} {args.command}", lambda: args.func(args))
