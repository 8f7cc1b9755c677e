"""The networks replayed from CUDA graphs (cuda_graph.py): the same results as eager inference on a GPU, one graph
per input size, and clear errors where graphs cannot run (a CPU model, together with compile, the CLI, the node).
The CUDA tests run where a GPU is (scripts/gpu_check.sh's machine); the rest everywhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_model import frame, tiny_model

from depth_panoptic_ros.cuda_graph import GraphedForward

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_a_cpu_model_refuses_cuda_graphs_by_name(tmp_path) -> None:
    from depth_panoptic_ros.model import load_model, save_model

    path = tmp_path / "m.safetensors"
    save_model(path, tiny_model())
    with pytest.raises(ValueError, match="cuda_graph needs the model on a CUDA device"):
        load_model(path, cuda_graph=True)
    inputs = (torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="CUDA device"):
        GraphedForward(lambda *args: args)(*inputs, True)
    with pytest.raises(ValueError, match="max_shapes"):
        GraphedForward(lambda *args: args, max_shapes=0)


def test_compile_and_cuda_graphs_exclude_each_other() -> None:
    model = tiny_model()
    model._graphed = GraphedForward(model.forward)  # what use_cuda_graphs sets on a CUDA model
    with pytest.raises(ValueError, match="choose one"):
        model.compile_networks()
    assert not model.compiled


def test_the_cli_and_the_node_report_cuda_graphs_off_cuda(tmp_path, capsys) -> None:
    from depth_panoptic_ros.cli import build_parser, main
    from depth_panoptic_ros.model import save_model

    path = tmp_path / "m.safetensors"
    save_model(path, tiny_model())
    assert build_parser().parse_args(["infer", "--image", "a", "--calib", "c", "--out", "o", "--cuda-graph"]).cuda_graph
    assert main(["bench", "model", "--model", str(path), "--size", "64x96", "--cuda-graph", "--repeats", "1"]) == 2
    assert "cuda_graph needs the model on a CUDA device" in capsys.readouterr().err
    pytest.importorskip("rclpy")
    from depth_panoptic_ros.ros.runtime.node import load_node_pipeline
    from depth_panoptic_ros.ros.runtime.parameters import NodeParameters

    logger = type("Logger", (), {"info": print, "error": print})()
    with pytest.raises(ValueError, match="cuda_graph needs the model on a CUDA device"):
        load_node_pipeline(NodeParameters(model_path=str(path), cuda_graph=True), logger)


@cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_graph_replays_give_the_eager_results_for_each_size(precision) -> None:
    from depth_panoptic_ros.device import autocast_dtype

    model = tiny_model().cuda()
    model.precision = autocast_dtype(precision)
    sizes = [(150, 260), (130, 200), (150, 260)]  # a size seen again replays its graph
    expected = [model.predict(*frame(*size)) for size in sizes]
    model.use_cuda_graphs()
    for size, (depth, result) in zip(sizes, expected, strict=True):
        for _ in range(2):  # the capture, then a replay: both equal eager inference
            graph_depth, graph_result = model.predict(*frame(*size))
            np.testing.assert_allclose(graph_depth, depth, atol=1e-3 if precision == "fp16" else 1e-5)
            assert np.mean(graph_result.ids == result.ids) > (0.99 if precision == "fp16" else 0.9999)
    assert model._graphed.captured == 2


@cuda
def test_graphs_beyond_max_shapes_evict_the_oldest() -> None:
    model = tiny_model().cuda()
    graphed = GraphedForward(model.forward, max_shapes=1)
    model._graphed = graphed
    first = model.predict(*frame(150, 260))
    model.predict(*frame(130, 200))
    assert graphed.captured == 1
    again = model.predict(*frame(150, 260))  # captured anew: the same result
    np.testing.assert_allclose(again[0], first[0], atol=1e-5)
    assert np.array_equal(again[1].ids, first[1].ids)
