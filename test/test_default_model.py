"""The shipped default model: small, self-describing, and as good as its model card says."""

from __future__ import annotations

from pathlib import Path

import pytest

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.model import read_header

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "default.safetensors"


def test_default_model_is_shipped_small_and_self_describing() -> None:
    assert MODEL.stat().st_size < 50 * 2**20
    header = read_header(MODEL)
    assert header["class_table"] == ClassTable.cityscapes().to_dict()
    assert header["extra"]["release"]["config"] == "config/train_synthetic_gpu.yaml"
    # the vehicle classes' own thing score cut, chosen on real frames (BENCHMARKS.md, "Per-class thing score")
    assert header["config"]["inference"]["min_thing_score"] == 0.2
    assert header["config"]["inference"]["min_thing_score_by_class"] == dict.fromkeys(
        ("car", "truck", "bus", "train"), 0.35
    )
    card = (REPO / "models" / "README.md").read_text()
    pq = header["extra"]["evaluation"]["panoptic"]["All"]["pq"]
    assert f"{100 * pq:.1f}" in card  # the card quotes the recorded evaluation


def test_the_node_and_infer_find_the_default_model() -> None:
    from depth_panoptic_ros.resources import default_model_path, resolve_path

    assert default_model_path().resolve() == MODEL.resolve()
    assert resolve_path("package://depth_panoptic_ros/models/default.safetensors").resolve() == MODEL.resolve()


@pytest.mark.slow
def test_default_model_meets_its_recorded_quality() -> None:
    from depth_panoptic_ros.training.config import load_train_config
    from depth_panoptic_ros.training.release import evaluate_file

    header = read_header(MODEL)
    release, recorded = header["extra"]["release"], header["extra"]["evaluation"]
    config = load_train_config(REPO / release["config"], release["overrides"])
    result = evaluate_file(MODEL, config, recorded["split"], recorded["frames"])
    assert result.frames == recorded["frames"]
    for group in ("All", "Things", "Stuff"):
        assert result.panoptic[group]["pq"] >= recorded["panoptic"][group]["pq"] - 0.01, group
    assert result.depth_model["rmse_mm"] <= recorded["depth_model"]["rmse_mm"] * 1.02


def test_loading_the_default_model_binds_the_completion_it_was_trained_with() -> None:
    """The header records the completion the networks learned from; loading binds it without a warning."""
    from depth_panoptic_ros import typed_config
    from depth_panoptic_ros.depth.classical import CompletionConfig
    from depth_panoptic_ros.pipeline import load_pipeline
    from depth_panoptic_ros.training.config import load_train_config

    release = read_header(MODEL)["extra"]["release"]
    trained = load_train_config(REPO / release["config"], release["overrides"]).pipeline.completion
    assert read_header(MODEL)["pipeline"]["completion"] == typed_config.to_dict(trained)
    pipeline = load_pipeline(None, str(MODEL), device="cpu")
    assert pipeline.config.completion == trained == CompletionConfig()  # trained over the package's defaults
    assert pipeline.changed_settings == ()
