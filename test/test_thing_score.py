"""The thing score cut chosen at run time (min_thing_score): the deployment's precision / recall trade-off, the
same check and message from the pipeline, the CLIs and the node."""

from __future__ import annotations

from dataclasses import replace
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
    """The shipped model on a real KITTI frame: every thing segment scores at least its class's stored cut, a
    global cut set at run time applies to every class, and a higher one keeps a subset of the scores."""
    from depth_panoptic_ros.data.kitti_objects import read_object_frame

    frame, _ = read_object_frame(kitti_object, "000010")
    pipeline = load_pipeline(None, None)
    table, model = pipeline.class_table, pipeline.model
    stored = model.inference.config
    result = pipeline.run(frame, outputs={"panoptic"}).panoptic
    index = table.class_index(result.segment_ids)
    things = (index >= 0) & table.is_thing[index]
    names = np.array(table.names)[index[things]]
    cuts = np.array([stored.min_thing_score_by_class.get(n, stored.min_thing_score) for n in names])
    assert (result.segment_scores[things] >= cuts).all() and (cuts > stored.min_thing_score).any()
    scores = {}
    for cut in (stored.min_thing_score, 0.4, 1.0):
        model.use_min_thing_score(cut)
        assert model.min_thing_score == cut and model.inference.config.min_thing_score_by_class == {}
        scores[cut] = _thing_scores(pipeline.run(frame, outputs={"panoptic"}).panoptic, table)
        assert (scores[cut] >= cut).all()
    low = scores[stored.min_thing_score]
    assert len(scores[1.0]) == 0 < len(scores[0.4]) < len(low)
    assert set(scores[0.4].tolist()) <= set(low.tolist())
    assert (low < cuts.max()).any()  # one number for every class: the stored per-class cuts are gone


def test_the_shipped_per_class_cut_drops_the_false_vehicles_of_a_real_frame(kitti_object: Path) -> None:
    """Frame 000004 (BENCHMARKS.md, "Per-class thing score"): with the model's per-class cuts its one labeled
    car is found and no false vehicle is left; one cut of 0.2 for every class keeps three false ones."""
    from depth_panoptic_ros.evaluation.kitti_objects import evaluate_kitti_objects

    pipeline = load_pipeline(None, None)
    counts = {}
    for name, cut in (("stored", None), ("global", 0.2)):
        if cut is not None:
            pipeline.model.use_min_thing_score(cut)
        (frame,) = evaluate_kitti_objects(pipeline, kitti_object, ["000004"])
        match = frame.result.groups[("vehicles", "moderate")].match
        counts[name] = (match.tp, match.fp, match.fn)
    assert counts == {"stored": (1, 0, 0), "global": (1, 3, 0)}


def test_per_class_cuts_round_trip_through_the_model_file(tmp_path: Path) -> None:
    """Stored in the header like the other inference settings; a class the table lacks is an error naming the
    file."""
    from dataclasses import replace

    from depth_panoptic_ros.model import CheckpointError, load_model

    config = tiny_config()
    cuts = {"car": 0.35, "truck": 0.4}
    stored = replace(config, inference=replace(config.inference, min_thing_score_by_class=cuts))
    path = tmp_path / "cuts.safetensors"
    save_model(path, DepthPanopticModel(stored, ClassTable.cityscapes()))
    assert load_model(path).inference.config == stored.inference
    unknown = replace(config, inference=replace(config.inference, min_thing_score_by_class={"tram": 0.3}))
    with pytest.raises(ValueError, match=r"min_thing_score_by_class names \['tram'\], not thing classes"):
        DepthPanopticModel(unknown, ClassTable.cityscapes())
    header = path.read_bytes().replace(b'{\\"car\\": 0.35', b'{\\"cat\\": 0.35')
    (tmp_path / "cat.safetensors").write_bytes(header)
    with pytest.raises(CheckpointError, match=r"cat.safetensors: .*\['cat'\], not thing classes"):
        load_model(tmp_path / "cat.safetensors")


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

    with_cuts = tmp_path / "cuts.safetensors"
    config = tiny_config()
    cuts = replace(config.inference, min_thing_score_by_class={"car": 0.9})
    save_model(with_cuts, DepthPanopticModel(replace(config, inference=cuts), ClassTable.cityscapes()))
    assert load_pipeline(None, str(with_cuts)).model.inference.config.min_thing_score_by_class == {"car": 0.9}
    # an explicit cut is one number for every class: it replaces the file's per-class cuts
    overridden = load_pipeline(None, str(with_cuts), min_thing_score=0.35).model.inference.config
    assert (overridden.min_thing_score, overridden.min_thing_score_by_class) == (0.35, {})

    pytest.importorskip("rclpy")
    from depth_panoptic_ros.ros.runtime.node import load_node_pipeline
    from depth_panoptic_ros.ros.runtime.parameters import NodeParameters

    logger = type("Logger", (), {"error": lambda self, text: pytest.fail(text)})()
    pipeline, state = load_node_pipeline(NodeParameters(model_path=str(path), min_thing_score=0.5), logger)
    assert pipeline.model.min_thing_score == 0.5 and "thing score >= 0.5" in state.description
    stored = load_node_pipeline(NodeParameters(model_path=str(path)), logger)[0].model.min_thing_score
    assert stored == tiny_config().inference.min_thing_score
    stored = load_node_pipeline(NodeParameters(model_path=str(with_cuts)), logger)
    assert stored[0].model.inference.config.min_thing_score_by_class == {"car": 0.9}
    assert "thing score >= 0.0 (car: 0.9)" in stored[1].description
    explicit = load_node_pipeline(NodeParameters(model_path=str(with_cuts), min_thing_score=0.5), logger)[0]
    assert explicit.model.inference.config.min_thing_score_by_class == {}
    with pytest.raises(ValueError, match="min_thing_score: expected -1"):
        NodeParameters(min_thing_score=1.5)


def test_release_checks_the_per_class_cuts_it_stores(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`depth-panoptic-train release --min-thing-score-by-class`: malformed pairs and unknown classes fail before
    any evaluation, naming what is wrong (the storing itself: the shipped file, BENCHMARKS.md)."""
    from depth_panoptic_ros.cli.train import main

    path = tmp_path / "plain.safetensors"
    save_model(path, DepthPanopticModel(tiny_config(), ClassTable.cityscapes()))
    release = ["release", "--config", str(REPO / "config" / "train_synthetic.yaml"), "--checkpoint", str(path)]
    release += ["--out", str(tmp_path / "out.safetensors"), "--min-thing-score-by-class"]
    for pairs, message in (
        (["car"], "takes CLASS=SCORE pairs (car=0.35), got 'car'"),
        (["=0.3"], "got '=0.3'"),
        (["car=high"], "got 'car=high'"),
        (["car=1.5"], "min_thing_score_by_class['car'] must lie in [0, 1], got 1.5"),
        (["car=0.3", "tram=0.3"], "min_thing_score_by_class names ['tram'], not thing classes"),
    ):
        assert main([*release, *pairs]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out.safetensors").exists()
