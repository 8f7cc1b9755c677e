"""torch.compile wired through the model, `infer --compile` and `bench model --compile`, with dynamic shapes.

Dynamo's tracing is what this package controls (graph breaks, shape guards, warm-up); code generation is
torch's. To keep these tests affordable on a CPU the graphs run with the aot_eager backend: dynamo and
AOTAutograd's passes over the symbolic shapes (where a symbolic ``%`` once broke inductor on the GPU, BENCHMARKS.md)
without inductor's code generation, which takes minutes on 2 cores; scripts/gpu_check.sh runs inductor on a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_model import frame, tiny_model


@pytest.fixture(autouse=True)
def _eager_backend():
    torch._dynamo.reset()
    with torch._dynamo.config.patch(debug_backend_override=">=0:aot_eager"):
        yield
    torch._dynamo.reset()


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


@pytest.mark.slow
def test_warm_up_compiles_once_for_every_later_image_size() -> None:
    model = tiny_model()
    inputs = frame(150, 260)
    expected = model.predict(*inputs)
    model.compile_networks()
    before = _graphs()
    model.warm_up(256, 384)  # P7 2 x 3: no size-1 or equal dimensions for the graphs to specialize on
    compiled = _graphs() - before
    assert compiled >= 2  # the completion and the panoptic network
    depth, result = model.predict(*inputs)  # another size: served by the dynamic-shape graphs of the warm-up
    assert _graphs() - before == compiled
    np.testing.assert_allclose(depth, expected[0], atol=1e-4)
    assert np.array_equal(result.ids, expected[1].ids)
    assert list(model.state_dict()) == list(tiny_model().state_dict())  # in place: the names are unchanged


def test_infer_and_bench_take_compile(tmp_path, monkeypatch) -> None:
    from depth_panoptic_ros.bench.model import run_model_benchmark
    from depth_panoptic_ros.cli import build_parser
    from depth_panoptic_ros.model import DepthPanopticModel, save_model
    from depth_panoptic_ros.pipeline import load_pipeline

    compiled = []
    monkeypatch.setattr(DepthPanopticModel, "compile_networks", lambda self: compiled.append(self))
    path = tmp_path / "m.safetensors"
    save_model(path, tiny_model())
    model = load_pipeline(None, str(path), compile=True).model
    assert compiled == [model]
    assert load_pipeline(None, str(path)).model not in compiled
    result = run_model_benchmark((130, 140), compile=True, model_path=path, repeats=1)
    assert len(compiled) == 2 and result["compile"] and set(result["stages_ms"]) == {"post_processing", "total"}
    assert build_parser().parse_args(["infer", "--image", "a", "--calib", "c", "--out", "o", "--compile"]).compile
    assert build_parser().parse_args(["bench", "model", "--compile"]).compile


def test_the_node_compiles_and_warms_up_at_start(tmp_path, monkeypatch) -> None:
    pytest.importorskip("rclpy")
    from depth_panoptic_ros.model import DepthPanopticModel, save_model
    from depth_panoptic_ros.ros.runtime.node import load_node_pipeline
    from depth_panoptic_ros.ros.runtime.parameters import NodeParameters

    calls: list[str] = []
    monkeypatch.setattr(DepthPanopticModel, "compile_networks", lambda self: calls.append("compile"))
    monkeypatch.setattr(DepthPanopticModel, "warm_up", lambda self: calls.append("warm_up"))
    path = tmp_path / "m.safetensors"
    save_model(path, tiny_model())
    logs: list[str] = []
    logger = type("Logger", (), {"info": lambda self, text: logs.append(text), "error": logs.append})()
    _, state = load_node_pipeline(NodeParameters(model_path=str(path), compile=True), logger)
    assert calls == ["compile", "warm_up"] and "compiled" in state.description
    assert "warmed up" in logs[0]
    load_node_pipeline(NodeParameters(model_path=str(path)), logger)
    assert calls == ["compile", "warm_up"]
