"""`depth-panoptic`: thin front ends that parse arguments and call the library.

Each subcommand lives in its own module with ``add_parser(subparsers)``; the parser sets ``func(args) -> int``.
Errors the user can fix raise ``CliError`` and end as one line on stderr with exit code 2, not a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from depth_panoptic_ros.device import DEVICE_HELP, PRECISIONS

if TYPE_CHECKING:
    from depth_panoptic_ros.pipeline import Pipeline

SUBCOMMANDS = (
    "infer",
    "pq",
    "evaluate",
    "evaluate_kitti_objects",
    "comparison_sheet",
    "bench",
    "export",
    "synth",
    "synth_bag",
    "bag",
    "demo",
)


class CliError(Exception):
    """A problem with the user's input (file, calibration, option): reported as one line."""


def image_size(text: str) -> tuple[int, int]:
    """argparse type for HEIGHTxWIDTH, rows first as in "375x1242" (KITTI) or "512x1024"."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 375x1242, got {text!r}") from None
    if height <= 0 or width <= 0:
        raise argparse.ArgumentTypeError(f"image size must be positive, got {text!r}")
    return height, width


def warn(message: str | None) -> None:
    """One warning line on stderr (nothing for None), e.g. a pipeline's settings_warning."""
    if message:
        print(f"warning: {message}", file=sys.stderr)


def add_panoptic_arguments(parser: argparse.ArgumentParser) -> None:
    """--merge and --min-thing-score, shared by every command that runs the panoptic network (checked by
    DepthPanopticModel.use_merge and use_min_thing_score)."""
    parser.add_argument(
        "--merge",
        metavar="{fcn,degeus,learned}",
        help="panoptic merge: fcn (Panoptic FCN), degeus (de Geus et al.), learned (the model's merge head); "
        "default: the model's stored choice",
    )
    parser.add_argument(
        "--min-thing-score",
        type=float,
        metavar="S",
        help="drop thing candidates scoring below S in [0, 1], one cut for every class (it replaces the model's "
        "per-class cuts): higher trades recall for precision; default: the model's stored cuts",
    )


def load_pipeline_of(args: argparse.Namespace, model: str | None) -> Pipeline:
    """The pipeline of a command's --config, --device, --precision, --merge and --min-thing-score (and --compile,
    --cuda-graph where it has them) for ``model`` (a path, None = the shipped one, '' = none)."""
    from depth_panoptic_ros.pipeline import load_pipeline

    return load_pipeline(
        args.config,
        model,
        args.device,
        args.precision,
        merge=args.merge,
        min_thing_score=args.min_thing_score,
        compile=getattr(args, "compile", False),
        cuda_graph=getattr(args, "cuda_graph", False),
    )


def _device(text: str) -> str:
    """argparse type of --device, checked by the package's one device check."""
    from depth_panoptic_ros.device import check_device

    try:
        return check_device(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {DEVICE_HELP}, got {text!r}") from None


def add_device_arguments(parser: argparse.ArgumentParser, compile: bool = False) -> None:
    """--device and --precision (and --compile, --cuda-graph), shared by every command that runs the networks."""
    parser.add_argument("--device", type=_device, default="cpu", help=f"{DEVICE_HELP} (default cpu)")
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="network precision; bf16/fp16 run under torch.autocast and are meant for CUDA GPUs (default fp32)",
    )
    if compile:
        parser.add_argument("--compile", action="store_true", help="torch.compile the networks (slow first frame)")
        parser.add_argument(
            "--cuda-graph",
            action="store_true",
            help="replay the networks from CUDA graphs captured at the first frame of each size (CUDA only)",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depth-panoptic", description="Depth-aware panoptic segmentation for camera + LiDAR: offline tools."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"depth_panoptic_ros.cli.{name}").add_parser(sub)
    return parser


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run_reporting_errors(prog: str, call: Callable[[], int | None]) -> int:
    """Exit code of ``call``; a CliError becomes one line on stderr (2); Ctrl-C, SIGINT or SIGTERM (a service
    manager's, `kill`'s or a job scheduler's stop) a short notice (130) after the command's clean-up (outputs are
    closed properly). A SIGINT that the process inherited ignored (a background job) stays ignored. The signal
    handlers before the command are back after it, unless a signal stopped it: then both signals are ignored, as
    the process is ending (Python's finalization would reset a Python handler to the default, and a late signal
    would kill the exit)."""
    previous = {stop: signal.getsignal(stop) for stop in STOP_SIGNALS}
    for stop, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(stop, _interrupt)
    try:
        return int(call() or 0)
    except CliError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    finally:
        for stop, handler in previous.items():
            current = signal.getsignal(stop)
            if current is _interrupt:
                signal.signal(stop, handler)
            elif current is _absorb:
                signal.signal(stop, signal.SIG_IGN)


def _interrupt(signum: int, frame: object) -> None:
    """The first SIGINT or SIGTERM ends the command like Ctrl-C; the ones after it are absorbed (_absorb), so that a
    second Ctrl-C (or launch's SIGTERM after its SIGINT) cannot break the clean-up the first began (closing an
    output bag) or the exit after it: such a stream used to end `bag process` with tracebacks and exit code -2."""
    for stop in STOP_SIGNALS:
        signal.signal(stop, _absorb)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _absorb(signum: int, frame: object) -> None:
    """A signal after the first: nothing. A Python handler rather than SIG_IGN until the command returns, so that
    signals already received but not yet handled do not print Python's "ignored due to race condition"."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_reporting_errors(f"depth-panoptic {args.command}", lambda: args.func(args))
