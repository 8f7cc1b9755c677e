"""`depth-panoptic export`: the networks of a checkpoint as ONNX (for TensorRT / ONNX Runtime)."""

from __future__ import annotations

import argparse
from pathlib import Path

from depth_panoptic_ros.cli import CliError, image_size


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the networks to ONNX")
    p.add_argument("--onnx", required=True, type=Path, help="output .onnx file")
    p.add_argument("--model", help="model .safetensors (default: the shipped model)")
    p.add_argument("--size", type=image_size, default=(384, 1248), help="HEIGHTxWIDTH the graph is built for")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depth_panoptic_ros.model import load_model
    from depth_panoptic_ros.resources import default_model_path, resolve_path

    try:
        height, width = args.size
        model = load_model(resolve_path(args.model) if args.model else default_model_path())
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise CliError(f"ONNX export needs the onnx and onnxscript packages ({exc.name} is missing)") from exc
    from depth_panoptic_ros.onnx_export import export_merge_head_onnx, export_onnx
    from depth_panoptic_ros.panoptic.levels import FEATURE_STRIDE, padded_size

    paths = [export_onnx(model, args.onnx, height, width)]
    if model.merge_head is not None:
        grid = [size // FEATURE_STRIDE for size in padded_size(height, width)]
        paths.append(export_merge_head_onnx(model, args.onnx.with_suffix(".merge_head.onnx"), *grid))
    for path in paths:
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB) for {height}x{width} inputs")
    return 0
