"""The thing score cut chosen at run time (min_thing_score): the deployment's precision / recall trade-off, the
same check and message from the pipeline, the CLIs and the node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_model import tiny_config

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.model import DepthPanopticModel, save_model
from depth_panoptic_ros.pipeline import load_pipeline

REPO = Path(__file__).resolve().parents[1]


def _thing_scores(result, table: ClassTable) -> np.ndarray:
    index = table.class_index(result.segment_ids)
    return result.segment_scores[(index >= 0) & table.is_thing[index]]


def test_the_cut_keeps_only_things_scoring_at_least_it_on_a_real_frame(kitti_object: Path) -> None:
    """The shipped model on a real KITTI frame: every thing segment scores at least the cut, a higher cut keeps
    a subset of the scores, and the stored cut comes back."""
    from depth_panoptic_ros.data.kitti_objects import read_object_frame

    frame, _ = read_object_frame(kitti_object, "000010")
    pipeline = load_pipeline(None, None)
    table, model = pipeline.class_table, pipeline.model
    stored = model.min_thing_score
    scores = {}
    for cut in (stored, 0.4, 1.0):
        model.use_min_thing_score(cut)
        assert model.min_thing_score == cut
        scores[cut] = _thing_scores(pipeline.run(frame, outputs={"panoptic"}).panoptic, table)
        assert (scores[cut] >= cut).all()
    assert len(scores[1.0]) == 0 < len(scores[0.4]) < len(scores[stored])
    assert set(scores[0.4].tolist()) <= set(scores[stored].tolist())


def test_pipeline_cli_and_node_check_the_cut(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from depth_panoptic_ros.cli import main

    path = tmp_path / "plain.safetensors"
    save_model(path, DepthPanopticModel(tiny_config(), ClassTable.cityscapes()))
    assert load_pipeline(None, str(path), min_thing_score=0.35).model.min_thing_score == 0.35
    with pytest.raises(ValueError, match=r"min_thing_score must lie in \[0, 1\]"):
        load_pipeline(None, str(path), min_thing_score=1.5)
    with pytest.raises(ValueError, match="needs a model"):
        load_pipeline(None, "", min_thing_score=0.3)
    config = str(REPO / "config" / "train_synthetic.yaml")
    assert main(["evaluate", "--config", config, "--checkpoint", str(path), "--min-thing-score", "-0.5"]) == 2
    assert "min_thing_score must lie in [0, 1]" in capsys.readouterr().err

    pytest.importorskip("rclpy")
    from depth_panoptic_ros.ros.runtime.node import load_node_pipeline
    from depth_panoptic_ros.ros.runtime.parameters import NodeParameters

    logger = type("Logger", (), {"error": lambda self, text: pytest.fail(text)})()
    pipeline, state = load_node_pipeline(NodeParameters(model_path=str(path), min_thing_score=0.5), logger)
    assert pipeline.model.min_thing_score == 0.5 and "thing score >= 0.5" in state.description
    stored = load_node_pipeline(NodeParameters(model_path=str(path)), logger)[0].model.min_thing_score
    assert stored == tiny_config().inference.min_thing_score
    with pytest.raises(ValueError, match="min_thing_score: expected -1"):
        NodeParameters(min_thing_score=1.5)
