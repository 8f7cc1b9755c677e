"""`depth-panoptic-train`: train a model from a config file, or compute a data set's input statistics.

    depth-panoptic-train --config CONFIG [--max-iters N] [--output-dir DIR] [--resume DIR|auto] [key=value ...]
    depth-panoptic-train stats --config CONFIG [--frames N] [key=value ...]
    depth-panoptic-train release --config CONFIG --checkpoint RUN|FILE --out FILE [--frames N] [key=value ...]

Several processes: ``torchrun --nproc_per_node N $(which depth-panoptic-train) --config ...``. This entrypoint
never imports rclpy, so it runs on machines without ROS.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from depth_panoptic_ros.cli import CliError, run_reporting_errors

if TYPE_CHECKING:
    from depth_panoptic_ros.data.sample import Sample
    from depth_panoptic_ros.training.config import TrainConfig

PROG = "depth-panoptic-train"


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="training config YAML (see config/train_*.yaml)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides with dotted keys, e.g. optimizer.lr=0.01"
    )


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.splitlines()[0], epilog=f"{PROG} stats -h: statistics"
    )
    _add_config_arguments(parser)
    parser.add_argument("--max-iters", type=int, help="override run.max_iters")
    parser.add_argument("--output-dir", type=Path, help="run folder (default runs/<config name>)")
    parser.add_argument("--resume", metavar="DIR|auto", help="continue a checkpoint folder, a run folder, or 'auto'")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def stats_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} stats",
        description="RGB and depth mean / std over the training split, printed as YAML for the config's "
        "model.normalization (depth over valid pixels of the networks' input depth only)",
    )
    _add_config_arguments(parser)
    parser.add_argument("--frames", type=int, help="use the first N frames only (default: all)")
    return parser


def release_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} release",
        description="store a trained model in fp16 with its evaluation on the first N validation frames in its header",
    )
    _add_config_arguments(parser)
    parser.add_argument("--checkpoint", required=True, type=Path, help="run folder or model .safetensors")
    parser.add_argument("--out", required=True, type=Path, help="released model file, e.g. models/default.safetensors")
    parser.add_argument("--frames", type=int, default=20, help="validation frames to evaluate (default 20)")
    return parser


def run_release(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.cli.evaluate import format_report
    from depth_panoptic_ros.training.release import release_model

    config = _config(args.config, args.overrides)
    trained = args.checkpoint / "model.safetensors" if args.checkpoint.is_dir() else args.checkpoint
    provenance = {"release": {"config": str(args.config), "overrides": list(args.overrides), "source": str(trained)}}
    try:
        result = release_model(trained, args.out, config, provenance, "val", args.frames)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from exc
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MB)\n{format_report(result, 'val')}")
    return 0


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
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from exc
    if result.model_path is not None:
        print(f"trained {result.iterations} iterations; model written to {result.model_path}")
    return 0


def normalization_statistics(samples: Iterable[Sample], config: TrainConfig) -> dict[str, list[float] | float]:
    """Per-channel RGB and valid-depth mean / std of the networks' input depth (the classical completion)."""
    import numpy as np
    from tqdm import tqdm

    from depth_panoptic_ros.depth.classical import complete_depth

    norm = config.model.normalization
    rgb_sum, rgb_squares, pixels = np.zeros(3), np.zeros(3), 0
    depth_sum = depth_squares = depth_pixels = 0.0
    for sample in tqdm(samples, desc="statistics", unit="frame"):
        rgb = sample.rgb.reshape(-1, 3).astype(np.float64)
        rgb_sum += rgb.sum(axis=0)
        rgb_squares += np.einsum("ij,ij->j", rgb, rgb)
        pixels += len(rgb)
        depth = complete_depth(sample.sparse, sample.rgb, config.pipeline.completion).astype(np.float64)
        valid = depth[(depth >= norm.min_depth) & (depth <= norm.max_depth)]
        depth_sum += valid.sum()
        depth_squares += valid @ valid
        depth_pixels += valid.size
    if depth_pixels == 0:
        raise CliError("no valid input depth in the frames: cannot compute depth statistics")
    rgb_mean = rgb_sum / pixels
    depth_mean = depth_sum / depth_pixels
    return {
        "rgb_mean": [round(float(v), 3) for v in rgb_mean],
        "rgb_std": [round(float(v), 3) for v in np.sqrt(rgb_squares / pixels - rgb_mean**2)],
        "depth_mean": round(float(depth_mean), 3),
        "depth_std": round(float(np.sqrt(depth_squares / depth_pixels - depth_mean**2)), 3),
    }


def run_stats(args: argparse.Namespace) -> int:
    import yaml

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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    subcommands = {"stats": (stats_parser, run_stats), "release": (release_parser, run_release)}
    if argv[:1] and argv[0] in subcommands:
        parser, run = subcommands[argv[0]]
        return run_reporting_errors(f"{PROG} {argv[0]}", lambda: run(parser().parse_args(argv[1:])))
    return run_reporting_errors(PROG, lambda: run_train(train_parser().parse_args(argv)))
