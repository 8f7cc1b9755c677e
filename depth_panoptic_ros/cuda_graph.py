"""The networks' forward pass replayed from CUDA graphs: captured once per input shape, then one launch a frame.

On a GPU the networks are launch-bound: hundreds of small kernels whose host-side launches take longer than their
GPU work. Replaying a captured graph took the shipped model from 26.8 ms eager to 12.6 ms per KITTI-size frame
(fp32; 11.7 ms bf16) and the paper-width R50 at 1024x2048 from 71 to 45 ms (fp16, bf16) on an H200 (BENCHMARKS.md,
"On a GPU"): what torch.compile's "reduce-overhead" mode does, without its minutes of compilation.

The price: each shape keeps its own static inputs, outputs and memory pool (the shipped model's peak at KITTI size
on the H200: 327 MB in fp32 from a graph, 350 MB eager), and a replay overwrites the previous frame's outputs, so
a caller must consume them (post-processing, copies to the host) before its next call, as
DepthPanopticModel.predict does. Sizes beyond ``max_shapes`` evict the oldest graph (a bag of several cameras, a
node whose camera changes resolution).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch

Forward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, bool], tuple[torch.Tensor, Any]]
WARM_UP_RUNS = 2  # before capture, on a side stream: cuDNN's algorithm choice and the allocator settle there


class GraphedForward:
    """``forward(rgb, sparse, init_depth, segment) -> (dense, outputs)`` on CUDA tensors, replayed from a graph
    captured at the first call with each input shape, layout, autocast type and ``segment`` flag."""

    def __init__(self, forward: Forward, max_shapes: int = 4) -> None:
        if max_shapes < 1:
            raise ValueError(f"max_shapes must be >= 1, got {max_shapes}")
        self._forward, self._max_shapes = forward, max_shapes
        self._graphs: OrderedDict[tuple, tuple[torch.cuda.CUDAGraph, list[torch.Tensor], tuple]] = OrderedDict()

    @property
    def captured(self) -> int:
        """How many graphs are held now."""
        return len(self._graphs)

    def __call__(self, rgb: torch.Tensor, sparse: torch.Tensor, init_depth: torch.Tensor, segment: bool) -> tuple:
        inputs = (rgb, sparse, init_depth)
        if any(t.device.type != "cuda" for t in inputs):
            raise ValueError("CUDA graphs need the inputs on a CUDA device")
        autocast = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else None
        key = (*((tuple(t.shape), t.stride(), t.dtype) for t in inputs), segment, autocast)
        if key not in self._graphs:
            self._graphs[key] = self._capture(inputs, segment)
            if len(self._graphs) > self._max_shapes:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        graph, static, (dense, outputs) = self._graphs[key]
        for target, source in zip(static, inputs, strict=True):
            target.copy_(source)
        graph.replay()
        # a shallow copy: a caller may rebind the outputs' fields, the captured ones must stay
        return dense, copy.copy(outputs)

    def _capture(self, inputs: tuple[torch.Tensor, ...], segment: bool) -> tuple:
        static = [t.clone() for t in inputs]  # clone keeps the layout (channels_last images)
        side = torch.cuda.Stream(inputs[0].device)
        side.wait_stream(torch.cuda.current_stream(inputs[0].device))
        with torch.cuda.stream(side):
            for _ in range(WARM_UP_RUNS):
                self._forward(*static, segment)
        torch.cuda.current_stream(inputs[0].device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = self._forward(*static, segment)
        return graph, static, outputs
