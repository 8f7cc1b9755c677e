"""The pipeline model: one config, safetensors checkpoints that rebuild it alone, numpy in / numpy out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.depth.network import DepthCompletionConfig
from depth_panoptic_ros.model import (
    CheckpointError,
    DepthPanopticModel,
    ModelConfig,
    Normalization,
    load_model,
    read_header,
    save_model,
)
from depth_panoptic_ros.panoptic.config import InferenceConfig, PanopticNetConfig

torch.set_num_threads(1)


def tiny_config(**overrides) -> ModelConfig:
    net = PanopticNetConfig(backbone="r18", fpn_channels=32, head_channels=64, embed_dim=16, **overrides)
    return ModelConfig(
        panoptic=net,
        inference=InferenceConfig(center_threshold=0.0, min_thing_score=0.0),
        completion=DepthCompletionConfig(width=8, n_blocks=1),
        normalization=Normalization(depth_mean=10.0, depth_std=5.0),
    )


def tiny_model(seed: int = 0, **overrides) -> DepthPanopticModel:
    torch.manual_seed(seed)
    model = DepthPanopticModel(tiny_config(**overrides), ClassTable.cityscapes()).eval()
    with torch.no_grad():  # the completion head starts at zero: give it weights so that round trips test them
        model.completion.head.weight.normal_(0, 0.1)
    return model


def frame(height: int = 67, width: int = 101) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    classical = rng.uniform(2, 40, (height, width)).astype(np.float32)
    sparse = np.where(rng.random((height, width)) < 0.1, classical, 0).astype(np.float32)
    return rgb, sparse, classical


def test_predict_gives_full_resolution_depth_and_panoptic() -> None:
    model = tiny_model()
    rgb, sparse, classical = frame()
    depth, result = model.predict(rgb, sparse, classical)
    assert depth.shape == (67, 101) and depth.dtype == np.float32 and (depth >= 0).all()
    assert result.ids.shape == (67, 101) and result.ids.dtype == np.int32
    present = set(np.unique(result.ids).tolist()) - {0}
    assert present == set(result.segment_ids.tolist())
    assert set(i // 1000 for i in present) <= set(ClassTable.cityscapes().ids.tolist())
    depth_only, none = model.predict(rgb, sparse, classical, segment=False)
    assert none is None and np.array_equal(depth_only, depth)
    kept_on_device, same = model.predict(rgb, sparse, classical, return_depth=False)
    assert kept_on_device is None and np.array_equal(same.ids, result.ids)


def test_save_load_round_trip_is_exact(tmp_path: Path) -> None:
    model = tiny_model(fusion="concat")
    path = tmp_path / "m.safetensors"
    save_model(path, model, extra={"trained_on": "unit test"})
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.class_table == model.class_table
    assert read_header(path)["extra"] == {"trained_on": "unit test"}
    rgb, sparse, classical = frame()
    (d1, r1), (d2, r2) = model.predict(rgb, sparse, classical), loaded.predict(rgb, sparse, classical)
    assert np.array_equal(d1, d2) and np.array_equal(r1.ids, r2.ids)
    assert np.array_equal(r1.segment_scores, r2.segment_scores)


def test_file_with_the_old_british_weight_names_loads(tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    model = tiny_model()
    new, old = tmp_path / "new.safetensors", tmp_path / "old.safetensors"
    save_model(new, model)
    with safe_open(str(new), framework="pt") as f:
        metadata = f.metadata()
    renamed = {k.replace("panoptic.color_", "panoptic.colour_"): v for k, v in model.state_dict().items()}
    assert sum(k.startswith("panoptic.colour_") for k in renamed) > 10  # the file really has the old names
    save_file({k: v.contiguous() for k, v in renamed.items()}, str(old), metadata=metadata)
    rgb, sparse, classical = frame()
    (d1, r1), (d2, r2) = model.predict(rgb, sparse, classical), load_model(old).predict(rgb, sparse, classical)
    assert np.array_equal(d1, d2) and np.array_equal(r1.ids, r2.ids)


def test_half_precision_storage_halves_the_file_and_loads_as_float32(tmp_path: Path) -> None:
    model = tiny_model()
    save_model(tmp_path / "full.safetensors", model)
    save_model(tmp_path / "half.safetensors", model, dtype=torch.float16)
    full, half = (tmp_path / "full.safetensors").stat().st_size, (tmp_path / "half.safetensors").stat().st_size
    assert 0.45 < half / full < 0.55
    loaded = load_model(tmp_path / "half.safetensors")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        if a.is_floating_point():
            torch.testing.assert_close(b, a.half().float(), msg=name)  # exactly the fp16-rounded weights
        else:
            assert torch.equal(a, b), name


def test_depth_reaches_the_panoptic_network() -> None:
    model = tiny_model()
    rgb, sparse, classical = frame()
    t = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731
    rgb_t = model.normalize_rgb(torch.from_numpy(rgb).permute(2, 0, 1)[None])
    with torch.no_grad():
        _, near = model(rgb_t, t(sparse), t(classical))
        _, far = model(rgb_t, t(sparse * 3), t(classical * 3))
    assert not torch.allclose(near.centers[0], far.centers[0])


def test_depth_normalization_uses_valid_range_only() -> None:
    model = tiny_model()
    depth = torch.tensor([0.0, 0.5, 1.0, 15.0, 500.0, 600.0])
    # mean 10, std 5; < 1 m and > 500 m are invalid and become 0 (the mean)
    assert model.normalize_depth(depth).tolist() == pytest.approx([0.0, 0.0, -1.8, 1.0, 98.0, 0.0])


def test_class_table_must_match_the_network() -> None:
    table = ClassTable.cityscapes()
    with pytest.raises(ValueError, match="8 thing / 11 stuff channels but the class table has 8 / 10"):
        DepthPanopticModel(tiny_config(), type(table)(table.classes[1:]))


def test_bad_checkpoints_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nope.safetensors does not exist"):
        load_model(tmp_path / "nope.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(CheckpointError, match="garbage.safetensors is not a readable safetensors file"):
        load_model(garbage)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="foreign.safetensors is not a depth_panoptic_ros/1 checkpoint"):
        load_model(foreign)
    truncated = tmp_path / "truncated.safetensors"
    save_model(truncated, tiny_model())
    truncated.write_bytes(truncated.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match="truncated.safetensors"):
        load_model(truncated)


def test_reduced_precision_runs_close_to_fp32(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_model(path, tiny_model())
    rgb, sparse, classical = frame()
    full, _ = load_model(path).predict(rgb, sparse, classical, segment=False)
    half, result = load_model(path, precision="bf16").predict(rgb, sparse, classical)
    assert result.ids.shape == rgb.shape[:2]
    assert np.abs(half - full).max() < 0.5  # bf16 has 8 bits of mantissa: ~0.4% of 40 m
    with pytest.raises(ValueError, match="precision: expected one of"):
        load_model(path, precision="int8")
