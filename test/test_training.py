"""Training: configuration and overrides, LR schedules, the sample stream, the loop (loss goes down, exact
resume), the `depth-panoptic-train` entrypoint (never imports rclpy; stats) and `depth-panoptic evaluate`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.cli import main as cli_main
from depth_panoptic_ros.cli.train import main as train_main
from depth_panoptic_ros.depth.classical import complete_depth
from depth_panoptic_ros.evaluation.depth_metrics import depth_errors
from depth_panoptic_ros.model import DepthPanopticModel, load_model, save_model
from depth_panoptic_ros.training.batch import Collate, TrainingSet
from depth_panoptic_ros.training.config import TrainConfig, apply_override, load_train_config
from depth_panoptic_ros.training.distributed import DistributedContext, StreamSampler
from depth_panoptic_ros.training.loop import train
from depth_panoptic_ros.training.schedule import ScheduleConfig, build_scheduler, lr_factor
from depth_panoptic_ros.typed_config import to_dict

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC = REPO / "config" / "train_synthetic.yaml"
CITYSCAPES = REPO / "config" / "train_cityscapes.yaml"
# The shipped synthetic config made tiny: 64 x 128 crops of 256 x 80 frames, batch 2, 4 frames, no side work.
TINY = [
    "data.synthetic.generator.size=[256, 80]",
    "data.synthetic.generator.lidar_config.fov_deg=90",
    "data.synthetic.train_frames=4",
    "data.synthetic.val_frames=2",
    "augment.crop_size=[64, 128]",
    "augment.scale_range=[0.8, 1.25]",
    "optimizer.lr=0.001",
    "schedule.warmup_iters=0",
    "run.device=cpu",
    "run.num_workers=0",
    "run.image_every=0",
    "run.checkpoint_every=0",
    "run.val_every=0",
    "run.log_every=1",
]
CPU = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(*overrides: str) -> TrainConfig:
    return load_train_config(SYNTHETIC, [*TINY, *overrides])


# -- configuration ---------------------------------------------------------------------------------------------------


def test_shipped_configs_parse_with_the_published_defaults() -> None:
    paper = load_train_config(CITYSCAPES, ["data.cityscapes.root=/data/cityscapes"])
    assert paper.model.panoptic.backbone == "r50" and paper.model.panoptic.embed_dim == 256
    assert (paper.optimizer.name, paper.optimizer.lr, paper.optimizer.momentum) == ("sgd", 0.02, 0.9)
    assert (paper.schedule.step_size, paper.schedule.gamma, paper.run.max_iters) == (1000, 0.9, 180_000)
    assert (paper.run.batch_size, paper.augment.crop_size, paper.augment.scale_range) == (12, (512, 1024), (0.5, 2.0))
    weights = paper.loss.panoptic
    assert (weights.pos, weights.seg, weights.omega, weights.d_max) == (1.0, 3.0, 3.0, 500.0)
    assert load_train_config(SYNTHETIC).data.name == "synthetic"


def test_the_completion_config_starts_from_the_shipped_model_with_a_fresh_completion_network() -> None:
    """config/train_completion.yaml fits models/default.safetensors: its panoptic network and merge head load
    as they are, its differently sized completion network starts as the classical depth, the pipeline is the
    package's current one (no pipeline section)."""
    from depth_panoptic_ros.pipeline import PipelineConfig
    from depth_panoptic_ros.training.loop import build_model

    config = load_train_config(REPO / "config" / "train_completion.yaml", ["run.device=cpu"])
    assert not config.trains_panoptic and config.trains_completion and config.pipeline == PipelineConfig()
    model = build_model(config)
    shipped = load_model(REPO / config.run.init_model)
    assert model.config.completion != shipped.config.completion
    for name, value in shipped.state_dict().items():
        if not name.startswith("completion."):
            assert torch.equal(model.state_dict()[name], value), name
    init = torch.rand(1, 1, 8, 16) * 50
    assert torch.equal(model.completion(torch.zeros(1, 3, 8, 16), torch.zeros_like(init), init), init)


def test_overrides_are_parsed_as_yaml_scalars_with_dotted_keys() -> None:
    config = tiny_config("optimizer.lr=0.005", "augment.crop_size=[32, 64]", "model.completion=null", "run.amp=bf16")
    assert config.optimizer.lr == 0.005 and config.augment.crop_size == (32, 64)
    assert config.model.completion is None and config.run.amp == "bf16"
    data: dict = {"model": None}
    apply_override(data, "model.panoptic.backbone=r34")
    assert data == {"model": {"panoptic": {"backbone": "r34"}}}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lrr=0.1", "unknown key.*lrr"),
        ("optimizer.lr", "not key=value"),
        ("optimizer.lr.x=1", "optimizer.lr is a value"),
        ("run.amp=fp8", "run.amp: expected one of fp32, bf16, fp16"),
        ("data.cityscapes.root=/x", "exactly one of"),
    ],
)
def test_bad_overrides_are_rejected_by_name(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_config(override)


def test_depth_only_data_needs_the_completion_network() -> None:
    with pytest.raises(ValueError, match="no panoptic labels"):
        load_train_config(SYNTHETIC, ["data.synthetic=null", "data.kitti_depth.root=/kitti", "model.completion=null"])


# -- schedule --------------------------------------------------------------------------------------------------------


def test_step_schedule_is_the_papers() -> None:
    config = ScheduleConfig()  # x 0.9 every 1000 iterations
    assert [lr_factor(config, 180_000, i) for i in (0, 999, 1000, 2500, 10_000)] == pytest.approx(
        [1.0, 1.0, 0.9, 0.81, 0.9**10]
    )


def test_poly_schedule_with_linear_warmup() -> None:
    config = ScheduleConfig(policy="poly", power=0.9, warmup_iters=100, warmup_factor=0.001)
    assert lr_factor(config, 1000, 500) == pytest.approx(0.5**0.9)
    # at iteration 50 of 100: warm-up 0.001 * 0.5 + 0.5 = 0.5005, times poly (1 - 50 / 1000)^0.9
    assert lr_factor(config, 1000, 50) == pytest.approx(0.5005 * 0.95**0.9)
    assert lr_factor(config, 1000, 0) == pytest.approx(0.001) and lr_factor(config, 1000, 1000) == 0.0


def test_scheduler_sets_the_optimizer_lr_per_iteration() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.02)
    scheduler = build_scheduler(optimizer, ScheduleConfig(step_size=2, gamma=0.5), max_iters=10)
    lrs = []
    for _ in range(5):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.02, 0.02, 0.01, 0.01, 0.005])


# -- data stream -----------------------------------------------------------------------------------------------------


def _take(sampler: StreamSampler, n: int) -> list[tuple[int, int]]:
    stream = iter(sampler)
    return [next(stream) for _ in range(n)]


def test_ranks_read_disjoint_slices_of_one_global_stream() -> None:
    single = _take(StreamSampler(10, 4, seed=1), 12)
    rank0 = _take(StreamSampler(10, 2, seed=1, rank=0, world_size=2), 6)
    rank1 = _take(StreamSampler(10, 2, seed=1, rank=1, world_size=2), 6)
    # iteration i of 2 ranks x 2 = positions [4i, 4i + 4): rank 0 the first two, rank 1 the last two
    assert [p for p, _ in rank0] == [0, 1, 4, 5, 8, 9] and [p for p, _ in rank1] == [2, 3, 6, 7, 10, 11]
    assert sorted(rank0 + rank1) == single
    epoch = [index for _, index in single[:10]]
    assert sorted(epoch) == list(range(10)) and epoch != list(range(10))


def test_stream_resumes_at_an_iteration() -> None:
    full = _take(StreamSampler(7, 3, seed=5), 30)
    assert _take(StreamSampler(7, 3, seed=5, start_iteration=4), 18) == full[12:]


def test_collated_batch_has_images_depths_and_targets_per_image() -> None:
    config = tiny_config()
    dataset = TrainingSet(config.data.open("train"), config.augment, config.pipeline.completion, seed=0)
    items = [dataset[(0, 1)], dataset[(1, 2)]]
    batch = Collate(ClassTable.cityscapes(), config.targets)(items)
    assert batch.rgb.shape == (2, 3, 64, 128) and batch.rgb.dtype == torch.uint8
    for depth in (batch.sparse, batch.init_depth, batch.depth):
        assert depth.shape == (2, 1, 64, 128) and depth.dtype == torch.float32
    assert len(batch.targets) == 2 and batch.targets[0].thing_masks.shape[1:] == (32, 32)  # padded to 128 / 4
    sample, init = items[0]
    np.testing.assert_array_equal(init, complete_depth(sample.sparse, sample.rgb, config.pipeline.completion))
    again = dataset[(0, 1)][0]  # the position seeds the augmentation
    np.testing.assert_array_equal(again.rgb, sample.rgb)


# -- loop ------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_thirty_iterations_lower_the_loss(tmp_path) -> None:
    result = train(tiny_config("run.max_iters=30"), tmp_path, CPU, progress=False)
    losses = np.array(result.losses)
    assert len(losses) == 30 and np.all(np.isfinite(losses))
    assert losses[-5:].mean() < 0.9 * losses[:5].mean()
    assert (tmp_path / "model.safetensors").is_file() and result.model_path == tmp_path / "model.safetensors"


# One frame, one deterministic crop, batch 1, no depth encoder: the same batch every iteration, small enough for
# the CPU's slow reduced-precision convolutions.
ONE_BATCH = [
    "data.synthetic.generator.size=[128, 64]",
    "data.synthetic.train_frames=1",
    "augment.crop_size=[64, 128]",
    "augment.scale_range=[1, 1]",
    "augment.flip=false",
    "run.batch_size=1",
    "model.panoptic.fusion=none",
]


@pytest.mark.slow
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_training_runs_on_the_cpu_and_lowers_the_loss(tmp_path, amp: str) -> None:
    result = train(tiny_config("run.max_iters=4", f"run.amp={amp}", *ONE_BATCH), tmp_path, CPU, progress=False)
    losses = np.array(result.losses)
    assert np.isfinite(losses).all() and result.skipped_steps == 0
    assert np.all(np.diff(losses) < 0), losses  # the same batch each time: every step lowers its loss


@pytest.mark.slow
def test_non_finite_steps_are_skipped_counted_and_stop_the_run(tmp_path, monkeypatch) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from depth_panoptic_ros.training import loop
    from depth_panoptic_ros.training.nonfinite import NonFiniteTrainingError

    loop.seed_everything(0)  # as train() does before building its model
    start = dict(loop.build_model(tiny_config(*ONE_BATCH)).named_parameters())
    monkeypatch.setattr(loop, "depth_completion_loss", lambda dense, *_: dense.sum() * float("nan"))
    closed: list[bool] = []
    close = loop._Reporter.close
    monkeypatch.setattr(loop._Reporter, "close", lambda self: closed.append(True) or close(self))
    config = tiny_config("run.max_iters=5", "run.max_nonfinite_steps=3", *ONE_BATCH)
    with pytest.raises(NonFiniteTrainingError, match="3 consecutive.*loss term 'depth' went non-finite at iteration 1"):
        train(config, tmp_path / "stop", CPU, progress=False)
    assert closed == [True]  # a run stopped by an error (or Ctrl-C, SIGTERM) closes its TensorBoard log and bar
    monkeypatch.setattr(loop, "depth_completion_loss", lambda dense, *_: dense.sum() * float("inf"))
    config = tiny_config("run.max_iters=2", "run.max_nonfinite_steps=3", "run.log_every=2", *ONE_BATCH)
    result = train(config, tmp_path / "skip", CPU, progress=False)
    assert result.skipped_steps == 2
    for name, value in result.model.named_parameters():  # no step was taken
        assert torch.equal(value, start[name]), name
    events = EventAccumulator(str(tmp_path / "skip" / "tensorboard"))
    events.Reload()
    assert [e.value for e in events.Scalars("train/skipped_steps")] == [2]


@pytest.mark.slow
def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path) -> None:
    config = tiny_config("run.max_iters=4", "run.checkpoint_every=2")  # Adam: its state holds 0-d step tensors
    whole = train(config, tmp_path / "whole", CPU, progress=False)
    assert sorted(p.name for p in (tmp_path / "whole" / "checkpoints").iterdir()) == ["iter_0000002", "iter_0000004"]
    resumed = train(config, tmp_path / "resumed", CPU, resume=str(tmp_path / "whole" / "checkpoints" / "iter_0000002"))
    assert resumed.losses == whole.losses[2:]
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert train(config, tmp_path / "whole", CPU, resume="auto").losses == []  # nothing left to do


def _run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_entrypoint_trains_and_exports_without_importing_rclpy(tmp_path) -> None:
    args = ["--config", str(SYNTHETIC), "--max-iters", "2", "--output-dir", str(tmp_path / "run"), "--quiet", *TINY]
    args += ["run.checkpoint_every=1", "run.keep_checkpoints=1"]
    code = (
        "import sys\nfrom depth_panoptic_ros.cli.train import main\n"
        f"rc = main({args!r})\nprint('rclpy' in sys.modules)\nsys.exit(rc)"
    )
    done = _run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["iter_0000002"]  # older pruned
    from depth_panoptic_ros.model import load_model, read_header

    header = read_header(tmp_path / "run" / "model.safetensors")
    assert header["extra"]["iterations"] == 2 and header["extra"]["data"] == "synthetic"
    assert header["extra"]["config"]["run"]["max_iters"] == 2
    assert header["pipeline"] == header["extra"]["config"]["pipeline"]  # the settings loading binds
    assert load_model(tmp_path / "run" / "model.safetensors").config.panoptic.backbone == "r18"


def test_entrypoint_reports_config_errors_in_one_line(capsys) -> None:
    assert train_main(["--config", str(SYNTHETIC), "optimizer.lrr=1"]) == 2
    assert "unknown key" in capsys.readouterr().err
    assert train_main(["--config", str(CITYSCAPES)]) == 2  # no data root given
    assert "cityscapes root is empty" in capsys.readouterr().err


def test_stats_prints_rgb_and_valid_depth_statistics(capsys) -> None:
    assert train_main(["stats", "--config", str(SYNTHETIC), "--frames", "2", *TINY]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)["model"]["normalization"]
    config = tiny_config()
    samples, completion = config.data.open("train"), config.pipeline.completion  # the config's own completion
    rgb = np.concatenate([samples[i].rgb.reshape(-1, 3) for i in range(2)]).astype(np.float64)
    depth = np.concatenate([complete_depth(samples[i].sparse, samples[i].rgb, completion).ravel() for i in range(2)])
    depth = depth[(depth >= 1) & (depth <= 500)]
    np.testing.assert_allclose(printed["rgb_mean"], rgb.mean(axis=0), atol=1e-3)
    np.testing.assert_allclose(printed["rgb_std"], rgb.std(axis=0), atol=1e-3)
    assert printed["depth_mean"] == pytest.approx(depth.mean(), abs=1e-3)
    assert printed["depth_std"] == pytest.approx(depth.std(), abs=1e-3)


# -- evaluate --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, DepthPanopticModel(tiny_config().model, ClassTable.cityscapes()))
    return path


def test_evaluate_warns_when_the_config_changes_the_model_s_completion(tmp_path, capsys) -> None:
    model = DepthPanopticModel(tiny_config().model, ClassTable.cityscapes())
    model.pipeline_settings = to_dict(tiny_config().pipeline)
    model.pipeline_settings["completion"]["extend_px"] = 7
    save_model(tmp_path / "m.safetensors", model)
    args = ["evaluate", "--config", str(SYNTHETIC), "--checkpoint", str(tmp_path / "m.safetensors"), "--frames", "1"]
    assert cli_main([*args, *TINY]) == 0
    extend = tiny_config().pipeline.completion.extend_px
    warning = f"warning: pipeline settings differ from those the model was trained with: completion.extend_px {extend}"
    assert capsys.readouterr().err.startswith(f"{warning} (model: 7) (its inputs are not what it learned from")
    assert cli_main([*args, *TINY, "pipeline.completion.extend_px=7"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_evaluate_prints_every_metric(tiny_checkpoint, capsys) -> None:
    args = ["evaluate", "--config", str(SYNTHETIC), "--checkpoint", str(tiny_checkpoint), "--frames", "2", *TINY]
    assert cli_main(args) == 0
    report = capsys.readouterr().out
    for expected in ("2 frames of split val", "All", "Things", "Stuff", "rmse_mm", "delta1", "Merged instances:"):
        assert expected in report
    assert "Look-alike pairs:" in report

    assert cli_main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == 2 and result["merged_instances"] >= 0 and result["merged_look_alike"] >= 0
    assert set(result["panoptic"]) == {"All", "Things", "Stuff", "per_class"}
    # the classical depth of the deployed path is the completion of exactly the measured depth of the samples
    config = tiny_config()
    samples, completion = config.data.open("val"), config.pipeline.completion
    expected = np.mean(
        [
            depth_errors(complete_depth(samples[i].sparse, samples[i].rgb, completion), samples[i].depth)["rmse_mm"]
            for i in range(2)
        ]
    )
    assert result["depth_classical"]["rmse_mm"] == pytest.approx(expected, rel=1e-6)
    # the untrained completion network starts at the classical depth (zero-initialized residual)
    assert result["depth_model"]["rmse_mm"] == pytest.approx(expected, rel=1e-4)


def test_evaluate_reports_a_missing_checkpoint(tmp_path, capsys) -> None:
    assert cli_main(["evaluate", "--config", str(SYNTHETIC), "--checkpoint", str(tmp_path / "none.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_release_stores_fp16_weights_with_their_own_evaluation(tiny_checkpoint, tmp_path) -> None:
    from depth_panoptic_ros.cli.train import main as train_main
    from depth_panoptic_ros.model import read_header
    from depth_panoptic_ros.training.release import evaluate_file

    out = tmp_path / "released.safetensors"
    args = ["release", "--config", str(SYNTHETIC), "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
    assert train_main([*args, "--frames", "2", *TINY]) == 0
    assert 0.45 < out.stat().st_size / tiny_checkpoint.stat().st_size < 0.55
    header = read_header(out)
    assert header["extra"]["release"]["overrides"] == TINY
    # the tiny file records no pipeline (as files from before the records): it gets the release config's
    assert header["pipeline"] == to_dict(tiny_config().pipeline)
    recorded = header["extra"]["evaluation"]
    assert recorded["split"] == "val" and recorded["frames"] == 2
    again = evaluate_file(out, tiny_config(), "val", 2)  # the numbers are those of the stored weights
    assert again.panoptic["All"]["pq"] == pytest.approx(recorded["panoptic"]["All"]["pq"], nan_ok=True)
    assert again.depth_model["rmse_mm"] == pytest.approx(recorded["depth_model"]["rmse_mm"])


def test_training_the_completion_alone_needs_a_trained_panoptic_network_and_a_completion_network() -> None:
    with pytest.raises(ValueError, match="set run.init_model"):
        tiny_config("run.train_panoptic=false")
    with pytest.raises(ValueError, match="needs model.completion"):
        tiny_config("run.train_panoptic=false", "run.init_model=x.safetensors", "run.train_completion=false")


@pytest.mark.slow
def test_completion_trains_alone_on_a_released_panoptic_network(tmp_path) -> None:
    """A completion network of another config starts fresh (the classical depth), the panoptic network keeps the
    released weights bit for bit through training, and the completion's loss goes down."""
    from depth_panoptic_ros.training.loop import build_model

    torch.manual_seed(1)
    path = tmp_path / "released.safetensors"
    save_model(path, build_model(tiny_config()), dtype=torch.float16)
    released = load_model(path)
    config = tiny_config(
        f"run.init_model={path}", "run.train_panoptic=false", "model.completion.width=8", "run.max_iters=20"
    )
    torch.manual_seed(2)
    started = build_model(config)
    rgb, sparse = torch.zeros(1, 3, 16, 24), torch.zeros(1, 1, 16, 24)
    init = torch.rand(1, 1, 16, 24) * 30
    assert torch.equal(started.completion(rgb, sparse, init), init)  # zero-initialized residual: classical depth
    result = train(config, tmp_path / "run", CPU, progress=False)
    trained = result.model.state_dict()
    for name, value in released.state_dict().items():
        if name.startswith("panoptic."):
            assert torch.equal(trained[name], value), name
    assert not torch.equal(result.model.completion.head.weight, started.completion.head.weight)
    losses = np.array(result.losses)
    assert losses[-5:].mean() < losses[:5].mean()


def test_init_model_starts_the_network_from_a_released_model(tmp_path) -> None:
    from depth_panoptic_ros.training.loop import build_model

    torch.manual_seed(1)
    released = build_model(tiny_config())
    path = tmp_path / "released.safetensors"
    save_model(path, released, dtype=torch.float16)
    torch.manual_seed(2)
    started = build_model(tiny_config(f"run.init_model={path}"))
    for (name, a), (_, b) in zip(released.state_dict().items(), started.state_dict().items(), strict=True):
        expected = a.half().float() if a.is_floating_point() else a
        assert torch.equal(expected, b), name
    with pytest.raises(ValueError, match="does not fit"):
        build_model(tiny_config("model.panoptic.fpn_channels=32", f"run.init_model={path}"))
    # a release with a learned merge head (the shipped model's case) starts a fine-tune without one
    with_head = build_model(tiny_config("model.merge_head.kernel_size=5"))
    save_model(path, with_head, dtype=torch.float16)
    started = build_model(tiny_config(f"run.init_model={path}"))
    assert started.merge_head is None
    for name, value in with_head.panoptic.state_dict().items():
        expected = value.half().float() if value.is_floating_point() else value
        assert torch.equal(started.panoptic.state_dict()[name], expected), name
    with pytest.raises(ValueError, match="set one"):
        tiny_config(f"run.init_model={path}", f"run.imagenet_weights={path}")
