"""Per-stage timing of the networks: completion, encoders, fusion, heads, post-processing.

Stages are timed with forward hooks on the real modules (synchronizing CUDA at each boundary), so the numbers
come from the same forward pass the pipeline runs, not from a re-implementation of it. By default the model is
untrained (random weights): the networks' cost does not depend on the weights; post-processing then sees many
weak peaks, an upper bound on its cost for the configured top-k. A model file (``--model``) is timed as shipped.
"""

from __future__ import annotations

import resource
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depth_panoptic_ros.bench.geometry import machine
from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.device import autocast_dtype, torch_device
from depth_panoptic_ros.model import DepthPanopticModel, ModelConfig, load_model
from depth_panoptic_ros.panoptic.config import PanopticNetConfig

STAGES = {
    "completion": ("completion",),
    "color_encoder": ("panoptic.color_backbone", "panoptic.color_fpn"),
    "depth_encoder": ("panoptic.depth_backbone", "panoptic.depth_fpn"),
    "fusion": ("panoptic.fusion",),
    "heads": ("panoptic.feature_encoder", "panoptic.position_head", "panoptic.kernel_head"),
}


class _StageClock:
    """Accumulates wall time per stage from forward pre-/post-hooks (heads run once per level)."""

    def __init__(self, model: torch.nn.Module, device: torch.device, hooks: bool = True) -> None:
        self.device = device
        self.totals: dict[str, float] = defaultdict(float)
        self._start: dict[str, float] = {}
        modules = dict(model.named_modules()) if hooks else {}
        for stage, names in STAGES.items():
            for name in names:
                if modules.get(name) is not None:
                    modules[name].register_forward_pre_hook(self._enter(name))
                    modules[name].register_forward_hook(self._leave(stage, name))

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _enter(self, name: str):
        def hook(module, args) -> None:
            self._start[name] = self.now()

        return hook

    def _leave(self, stage: str, name: str):
        def hook(module, args, output) -> None:
            self.totals[stage] += (self.now() - self._start[name]) * 1e3

        return hook


class _TimedInference:
    """The model's post-processing with its time appended to ``times`` (ms); its other attributes (the merge
    choice, the merge head) read through, as DepthPanopticModel.predict reads them."""

    def __init__(self, inference: Any, clock: _StageClock, times: list[float]) -> None:
        self.inner, self.clock, self.times = inference, clock, times

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = self.clock.now()
        result = self.inner(*args, **kwargs)
        self.times.append((self.clock.now() - start) * 1e3)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def run_model_benchmark(
    size: tuple[int, int] = (512, 1024),
    backbone: str = "r18",
    device: str = "cpu",
    precision: str = "fp32",
    fusion: str = "mean",
    repeats: int = 3,
    compile: bool = False,
    model_path: str | Path | None = None,
    cuda_graph: bool = False,
) -> dict:
    """Median per-stage times of ``repeats`` frames after one warm-up frame. model_path: a model file (its
    architecture and weights; backbone and fusion are then the file's), else an untrained model of ``backbone``
    and ``fusion`` at the published widths. Compiled or graph-captured networks (cuda_graph) are timed end to end
    only: a compiled graph fuses the stages, stage hooks would break it apart, and a captured one cannot
    synchronize inside."""
    torch.manual_seed(0)
    dev = torch_device(device)
    if model_path is not None:
        model = load_model(model_path, device, precision, compile, cuda_graph)
    else:
        config = ModelConfig(panoptic=PanopticNetConfig(backbone=backbone, fusion=fusion))
        model = DepthPanopticModel(config, ClassTable.cityscapes()).eval().to(dev)
        if dev.type == "cuda":
            model.to(memory_format=torch.channels_last)
        model.precision = autocast_dtype(precision)
        if compile:
            model.compile_networks()
        if cuda_graph:
            model.use_cuda_graphs()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    end_to_end = compile or cuda_graph
    clock = _StageClock(model, dev, hooks=not end_to_end)

    height, width = size
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    classical = rng.uniform(3, 60, (height, width)).astype(np.float32)
    sparse = np.where(rng.random((height, width)) < 0.05, classical, 0).astype(np.float32)

    post_ms: list[float] = []
    model.inference = _TimedInference(model.inference, clock, post_ms)
    model.predict(rgb, sparse, classical)  # warm-up (compilation, cuDNN autotuning, allocator)
    runs = []
    for _ in range(repeats):
        clock.totals.clear()
        start = clock.now()
        model.predict(rgb, sparse, classical)
        total = (clock.now() - start) * 1e3
        runs.append({**clock.totals, "post_processing": post_ms[-1], "total": total})
    keys = [*(STAGES if not end_to_end else ()), "post_processing", "total"]
    stages = {key: float(np.median([r.get(key, 0.0) for r in runs])) for key in keys}
    peak = (
        torch.cuda.max_memory_allocated(dev) / 2**20
        if dev.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "machine": torch.cuda.get_device_name(dev) if dev.type == "cuda" else machine(),
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "size": f"{height}x{width}",
        "model": str(model_path) if model_path is not None else "untrained",
        "backbone": model.config.panoptic.backbone,
        "fusion": model.config.panoptic.fusion,
        "precision": precision,
        "compile": compile,
        "cuda_graph": cuda_graph,
        "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "peak_memory_mb": peak,
        "peak_memory_kind": "CUDA max allocated" if dev.type == "cuda" else "process max RSS",
        "repeats": repeats,
        "stages_ms": stages,
    }


def format_table(result: dict) -> str:
    head = (
        f"{result['machine']} ({result['device']}, {result['torch_threads']} threads) — {result['backbone']}, "
        f"fusion {result['fusion']}, {result['precision']}{', compiled' if result['compile'] else ''}"
        f"{', CUDA graph' if result['cuda_graph'] else ''}, "
        f"{result['size']}, {result['parameters_m']:.1f} M params, "
        f"peak {result['peak_memory_mb']:.0f} MB ({result['peak_memory_kind']})"
    )
    rows = "\n".join(f"| {stage} | {ms:.1f} |" for stage, ms in result["stages_ms"].items())
    return f"{head}\n\n| stage | ms (median of {result['repeats']}) |\n|---|---|\n{rows}"
