"""One precision vocabulary and one device check for node, CLIs and training; every precision gives finite,
fp32-close outputs with the shipped model on a real KITTI frame; AMP training runs and stops on non-finite steps."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.cli import build_parser
from depth_panoptic_ros.depth.network import NormalizedConv2d
from depth_panoptic_ros.device import PRECISIONS, autocast_dtype, check_amp, check_device, check_precision, torch_device
from depth_panoptic_ros.training.nonfinite import NonFiniteSteps, NonFiniteTrainingError

REPO = Path(__file__).resolve().parents[1]


# -- vocabulary and device check -------------------------------------------------------------------------------------


def test_one_vocabulary_names_the_setting_that_is_wrong() -> None:
    assert PRECISIONS == ("fp32", "bf16", "fp16")
    assert [autocast_dtype(p) for p in PRECISIONS] == [None, torch.bfloat16, torch.float16]
    with pytest.raises(ValueError, match=r"--precision: expected one of fp32, bf16, fp16, got 'int8'"):
        check_precision("int8", "--precision")
    for good in ("cpu", "cuda", "cuda:1"):
        assert check_device(good) == good
    for bad in ("tpu", "cuda:", "CPU", "cuda:x", "cpu:0:1"):
        with pytest.raises(ValueError, match="run.device: expected cpu, cuda or cuda:N"):
            check_device(bad, "run.device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_a_gpu_this_machine_lacks_is_a_clear_error() -> None:
    assert torch_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device: cuda:0 requested but CUDA is not available"):
        torch_device("cuda:0")


def test_training_accepts_the_old_amp_spelling_with_a_deprecation_warning() -> None:
    from depth_panoptic_ros.training.config import load_train_config

    with pytest.warns(FutureWarning, match="run.amp: 'off' is deprecated, use 'fp32'"):
        assert check_amp("off") == "fp32"
    with pytest.warns(FutureWarning, match="'off' is deprecated"):
        assert load_train_config(REPO / "config" / "train_synthetic.yaml", ["run.amp=off"]).run.amp == "fp32"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_amp("fp16") == "fp16"


@pytest.mark.parametrize(
    "argv",
    [
        ["infer", "--image", "a.png", "--calib", "c.txt", "--out", "o"],
        ["bag", "process", "in", "out"],
        ["evaluate", "--config", "c.yaml", "--checkpoint", "m"],
        ["bench", "model"],
    ],
)
def test_every_command_that_runs_the_networks_takes_the_same_device_and_precision(argv: list[str], capsys) -> None:
    parser = build_parser()
    args = parser.parse_args([*argv, "--device", "cuda:1", "--precision", "bf16"])
    assert (args.device, args.precision) == ("cuda:1", "bf16")
    for bad in (["--precision", "half"], ["--device", "gpu"]):
        with pytest.raises(SystemExit):
            parser.parse_args([*argv, *bad])
    assert "expected cpu, cuda or cuda:N, got 'gpu'" in capsys.readouterr().err


# -- numerics --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_normalized_convolution_is_finite_and_exact_under_autocast(dtype: torch.dtype) -> None:
    """One measurement of 0.5 in a 9 x 9 image: a 3x3 normalized convolution returns it (plus the bias) where the
    kernel reaches it and the bias alone (not 0 / 0) elsewhere; its gradient stays finite."""
    torch.manual_seed(0)
    conv = NormalizedConv2d(1, 2, 3)
    value = torch.zeros(1, 1, 9, 9)
    valid = torch.zeros(1, 1, 9, 9)
    value[0, 0, 4, 4], valid[0, 0, 4, 4] = 0.5, 1.0
    with torch.autocast("cpu", dtype=dtype):
        out, confidence = conv(value, valid)
    bias = conv.bias.detach().view(1, 2, 1, 1)
    reached = torch.zeros(1, 1, 9, 9, dtype=torch.bool)
    reached[..., 3:6, 3:6] = True
    expected = torch.where(reached, 0.5 + bias, bias)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out, expected.expand_as(out), rtol=1e-5, atol=1e-6)
    assert ((confidence > 0) == reached).all()
    (out.sum() + confidence.sum()).backward()
    assert torch.isfinite(conv.weight.grad).all()


@pytest.fixture(scope="module")
def kitti_crop_predictions() -> dict:
    """The shipped model on a 128 x 384 crop of KITTI object frame 000001 (cars, road, buildings) in every
    precision, through the whole pipeline. Cropped because reduced precision on a CPU without native bf16/fp16
    convolutions runs ~30x slower than fp32."""
    from conftest import shared_data

    from depth_panoptic_ros.data.calibration import load_any_calibration
    from depth_panoptic_ros.data.images import read_rgb
    from depth_panoptic_ros.data.kitti import read_points
    from depth_panoptic_ros.frame import SensorFrame
    from depth_panoptic_ros.pipeline import load_pipeline

    root = shared_data("kitti", "object")
    rgb = read_rgb(root / "image_2" / "000001.png")
    calib = load_any_calibration(root / "calib" / "000001.txt", image_size=(rgb.shape[1], rgb.shape[0]))
    x, y, width, height = 430, 200, 384, 128
    frame = SensorFrame(
        rgb=np.ascontiguousarray(rgb[y : y + height, x : x + width]),
        camera=calib.camera.cropped(x, y, width, height),
        points=read_points(root / "velodyne" / "000001.bin"),
        T_cam_lidar=calib.T_cam_lidar,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {p: load_pipeline(None, None, "cpu", p).run(frame) for p in PRECISIONS}
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_matches_fp32_on_a_real_kitti_frame(kitti_crop_predictions: dict, precision: str) -> None:
    reference, products = kitti_crop_predictions["fp32"], kitti_crop_predictions[precision]
    assert np.isfinite(products.depth).all() and products.panoptic is not None
    filled = reference.depth > 0
    assert filled.mean() > 0.5
    assert (np.abs(products.depth - reference.depth)[filled] <= 0.5).mean() >= 0.95
    divisor = ClassTable.cityscapes().label_divisor
    same_class = products.panoptic.ids // divisor == reference.panoptic.ids // divisor
    assert same_class.mean() >= 0.90
    assert len(set(np.unique(reference.panoptic.ids // divisor).tolist()) - {0}) >= 3  # a frame worth comparing
    assert np.isfinite(products.cloud.xyz).all()
    measured = products.instances.valid_count > 0
    assert measured.any() and np.isfinite(products.instances.depth_median[measured]).all()


# -- non-finite training steps ---------------------------------------------------------------------------------------


def test_consecutive_non_finite_steps_end_training_naming_the_loss_term() -> None:
    steps = NonFiniteSteps(limit=3)
    finite = {"pos": torch.tensor(1.0), "depth": torch.tensor(0.5)}
    broken = {"pos": torch.tensor(1.0), "depth": torch.tensor(float("nan"))}
    for iteration, ok in enumerate([True, False, False, True, False, False], 1):  # streaks of 2: tolerated
        steps.update(iteration, ok, finite if ok else broken)
    assert (steps.total, steps.streak) == (4, 2)
    with pytest.raises(NonFiniteTrainingError, match="3 consecutive.*loss term 'depth' went non-finite at iteration 5"):
        steps.update(7, False, finite)
    overflow = NonFiniteSteps(limit=1)
    with pytest.raises(NonFiniteTrainingError, match="gradients went non-finite at iteration 9"):
        overflow.update(9, False, finite)


@pytest.mark.slow
def test_gpu_check_script_runs_end_to_end_without_ros(tmp_path) -> None:
    """scripts/gpu_check.sh --dry on the CPU: every section of the GPU check, at a tiny size, as one JSON block."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [str(REPO / "scripts" / "gpu_check.sh"), "--dry", "--device", "cpu", "--output", "partial.json"],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert json.loads((tmp_path / "partial.json").read_text()) == result  # written after the last section too
    assert result["dry"] and not result["ros_imported"] and not result["skipped"] and not result["errors"]
    assert {(m["name"], m["precision"]) for m in result["model"]} == {("shipped", "fp32"), ("r50_paper", "fp32")}
    assert all(m["stages_ms"]["total"] > 0 for m in result["model"])
    assert result["pipeline"][0]["stages_ms"]["network"] > 0 and result["training"]["iterations_per_s"] > 0
    copies = result["host_device_copies"][0]
    assert copies["size"] == "96x160" and copies["up_bytes"] == 96 * 160 * (3 + 4 + 4)
    assert copies["ids_down_bytes"] == copies["learned_depth_down_bytes"] == 96 * 160 * 4 and copies["up_ms"] >= 0
    instances = result["instance_depth"][0]
    assert instances["tables_agree"] and instances["segments"] > 10 and instances["device_ms"] > 0
    stream = result["lookahead"][0]
    assert stream["frames"] == 1 and len(stream["sequential_ms"]) == len(stream["lookahead_ms"]) == 2


def test_gpu_check_runs_eager_figures_first_then_compiled_ones_while_the_budget_lasts(monkeypatch) -> None:
    """The plan of the full check on a GPU (measurements replaced by records of the calls): every eager figure, the
    CUDA graph runs, then the compiled runs in the order of issue 15.5's goals, none of them once the budget is
    spent."""
    from depth_panoptic_ros.bench import gpu_check

    calls = []

    def record(kind):
        return lambda *args, **kwargs: calls.append((kind, args, kwargs)) or {}

    recorded = ("_model_benchmark", "_pipeline_per_frame", "_host_device_copies", "_instance_depth_host_and_device")
    for name in (*recorded, "_pipeline_lookahead"):
        monkeypatch.setattr(gpu_check, name, record(name))
    monkeypatch.setattr(gpu_check, "_training_speed", record("_training_speed"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "a GPU")
    result = gpu_check.run_gpu_check("cuda", budget_s=1e9)
    compiled = [c for c in calls if c[2].get("compile") or (c[0] == "_pipeline_per_frame" and c[1][-2])]
    graphs = [c for c in calls if c[2].get("cuda_graph") or (c[0] == "_pipeline_per_frame" and c[1][-1])]
    assert len(calls) == 12 + 6 + 2 + 2 + 1 + 12 + 2 + 6 and calls[-6:] == compiled and not result["errors"]
    streams = calls[-8:-6]  # the fastest setting: fp16 from CUDA graphs, each size
    assert [(c[0], c[1][1:3], c[1][-1]) for c in streams] == [
        ("_pipeline_lookahead", (size, "fp16"), True) for size in gpu_check.FULL_SIZES
    ]
    assert calls[-20:-8] == graphs and {(c[1][0], c[1][4]) for c in graphs[:8]} == {
        (name, precision) for name in ("shipped", "r50_paper") for precision in ("fp32", "fp16")
    }
    first = compiled[0]  # the shipped model's whole pipeline at KITTI size, compiled, in fp16
    assert first[0] == "_pipeline_per_frame" and first[1][1:3] == ((375, 1242), "fp16")
    assert compiled[1][1][:2] == ("r50_paper", (1024, 2048)) and compiled[1][1][4] == "fp16"
    calls.clear()
    result = gpu_check.run_gpu_check("cuda", budget_s=-1)
    assert (
        len(calls) == 37
        and len(result["skipped"]) == 6
        and result["skipped"][0] == "pipeline (375, 1242) fp16 compiled"
    )
