"""ONNX export matches PyTorch; the model benchmark measures the real stages of the real model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.model import DepthPanopticModel, ModelConfig, save_model
from depth_panoptic_ros.panoptic.config import PanopticNetConfig


@pytest.mark.slow
def test_onnx_export_matches_pytorch(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from test_model import tiny_model

    from depth_panoptic_ros.cli import main
    from depth_panoptic_ros.onnx_export import INPUT_NAMES, output_names

    model = tiny_model()
    save_model(tmp_path / "m.safetensors", model)
    onnx_path = tmp_path / "m.onnx"
    assert (
        main(["export", "--model", str(tmp_path / "m.safetensors"), "--onnx", str(onnx_path), "--size", "64x128"]) == 0
    )

    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 255, (1, 3, 64, 128)).astype(np.float32)
    classical = rng.uniform(2, 30, (1, 1, 64, 128)).astype(np.float32)
    sparse = np.where(rng.random((1, 1, 64, 128)) < 0.1, classical, 0).astype(np.float32)
    session = ort.InferenceSession(str(onnx_path))
    assert [o.name for o in session.get_outputs()] == output_names()
    got = session.run(None, dict(zip(INPUT_NAMES, [rgb, sparse, classical], strict=True)))
    with torch.no_grad():
        dense, out = model(
            model.normalize_rgb(torch.from_numpy(rgb)), torch.from_numpy(sparse), torch.from_numpy(classical)
        )
    expected = [dense, out.features, *out.centers, *out.stuff, *out.kernels]
    for name, g, e in zip(output_names(), got, expected, strict=True):
        np.testing.assert_allclose(g, e.numpy(), atol=1e-4, err_msg=name)


@pytest.mark.parametrize("fusion", ["mean", "none"])
def test_model_benchmark_reports_every_stage(fusion: str) -> None:
    from depth_panoptic_ros.bench.model import format_table, run_model_benchmark

    result = run_model_benchmark((64, 128), "r18", fusion=fusion, repeats=1)
    expected_params = DepthPanopticModel(
        ModelConfig(panoptic=PanopticNetConfig(backbone="r18", fusion=fusion)), ClassTable.cityscapes()
    )
    assert result["parameters_m"] == pytest.approx(sum(p.numel() for p in expected_params.parameters()) / 1e6)
    stages = result["stages_ms"]
    for stage in ("completion", "color_encoder", "heads", "post_processing"):
        assert stages[stage] > 0
    assert (stages["depth_encoder"] > 0) == (fusion != "none") and (stages["fusion"] > 0) == (fusion != "none")
    timed = sum(v for k, v in stages.items() if k != "total")
    assert timed <= stages["total"] * 1.05  # stages are disjoint parts of one pass
    assert "color_encoder" in format_table(result)
