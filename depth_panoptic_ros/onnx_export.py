"""ONNX export of the networks (completion + panoptic), for TensorRT / ONNX Runtime deployments.

Post-processing (peak picking, kernel fusion, merge) stays in PyTorch: it is data-dependent and cheap next to
the networks. The exported graph takes the raw inputs the pipeline has — RGB 0..255, sparse and classical
depth in meters — so a deployment needs no copy of the normalization.

A learned merge head is exported beside the networks (``<name>.merge_head.onnx``), since it runs on the
candidates that post-processing finds: inputs masks (N, h, w), thing_channels (N,) and context (C, h, w) of
panoptic.merge_head.context_maps, output refined_logits (N, h, w), for any number N of candidates.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from depth_panoptic_ros.model import DepthPanopticModel
from depth_panoptic_ros.panoptic.levels import HEAD_STRIDES, level_name

INPUT_NAMES = ["rgb", "sparse_depth", "classical_depth"]


def output_names() -> list[str]:
    levels = [level_name(stride) for stride in HEAD_STRIDES]
    return (
        ["dense_depth", "features"]
        + [f"centers_{level}" for level in levels]
        + [f"stuff_{level}" for level in levels]
        + [f"kernels_{level}" for level in levels]
    )


class _FlatOutputs(nn.Module):
    """The model with tensor-only inputs and outputs, as ONNX needs them."""

    def __init__(self, model: DepthPanopticModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, rgb: torch.Tensor, sparse: torch.Tensor, classical: torch.Tensor) -> tuple[torch.Tensor, ...]:
        dense, out = self.model(self.model.normalize_rgb(rgb), sparse, classical)
        return (dense, out.features, *out.centers, *out.stuff, *out.kernels)


def export_onnx(model: DepthPanopticModel, path: str | Path, height: int, width: int, opset: int = 18) -> Path:
    """Exports for inputs of height x width (the example size); the graph is traced at that size."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _FlatOutputs(model.eval().cpu().float())
    example = (
        torch.zeros(1, 3, height, width),
        torch.zeros(1, 1, height, width),
        torch.full((1, 1, height, width), 10.0),
    )
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            wrapper,
            example,
            str(path),
            input_names=INPUT_NAMES,
            output_names=output_names(),
            opset_version=opset,
            dynamo=True,
            external_data=False,
        )
    return path


def export_merge_head_onnx(
    model: DepthPanopticModel, path: str | Path, height: int, width: int, opset: int = 18
) -> Path:
    """Exports the model's merge head for a feature grid of height x width (the network input / 4, padded)."""
    head = model.merge_head
    if head is None:
        raise ValueError("the model has no learned merge head to export")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    context = 1 + head.num_thing + head.num_stuff  # thing and stuff semantics, depth
    example = (torch.rand(2, height, width), torch.zeros(2, dtype=torch.long), torch.zeros(context, height, width))
    candidates = torch.export.Dim("candidates", min=1, max=4096)
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            head.eval().cpu().float(),
            example,
            str(path),
            input_names=["masks", "thing_channels", "context"],
            output_names=["refined_logits"],
            opset_version=opset,
            dynamo=True,
            external_data=False,
            dynamic_shapes={"masks": {0: candidates}, "thing_channels": {0: candidates}, "context": {}},
        )
    return path
