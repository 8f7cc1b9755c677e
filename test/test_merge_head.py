"""The learned merge head (merge ``learned``) and the run-time choice of the merge.

The head is checked against a literal transcription of its definition (stack every candidate's channels, run
a depthwise then a one-channel convolution per candidate), on a hand-built scene whose refined masks and merged
map are known, and through the model: an untrained head reproduces de Geus, a file keeps the head, and asking
for ``learned`` without a head is an error (library, CLI) or a logged fall-back (node).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_merge import LEGEND, TABLE, _grid
from test_model import frame, tiny_config

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.model import DepthPanopticModel, load_model, save_model
from depth_panoptic_ros.panoptic.inference import Candidates, PanopticInference
from depth_panoptic_ros.panoptic.merge import MergeConfig, merge_degeus
from depth_panoptic_ros.panoptic.merge_head import MASK_EPS, MergeHead, MergeHeadConfig, context_maps
from depth_panoptic_ros.pipeline import load_pipeline

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


def head_model(seed: int = 0, strategy: str = "degeus") -> DepthPanopticModel:
    torch.manual_seed(seed)
    config = tiny_config()
    inference = dataclasses.replace(config.inference, merge=MergeConfig(strategy=strategy))
    config = dataclasses.replace(config, inference=inference, merge_head=MergeHeadConfig(kernel_size=3))
    return DepthPanopticModel(config, ClassTable.cityscapes()).eval()


def test_context_maps_hold_per_class_maxima_stuff_and_depth() -> None:
    a = torch.tensor([[0.9, 0.2], [0.1, 0.0]])
    b = torch.tensor([[0.3, 0.7], [0.0, 0.4]])
    c = torch.tensor([[0.0, 0.0], [0.8, 0.1]])
    sky = torch.tensor([[0.5, 0.5], [0.0, 0.0]])
    depth = torch.tensor([[-1.0, 0.0], [1.0, 2.0]])
    # things a, b of channel 1, c of channel 0; 2 thing and 3 stuff channels, sky is stuff channel 2
    context = context_maps(torch.stack([a, b, c]), torch.tensor([1, 1, 0]), sky[None], torch.tensor([2]), depth, 2, 3)
    expected = torch.stack([c, torch.maximum(a, b), torch.zeros(2, 2), torch.zeros(2, 2), sky, depth])
    assert torch.equal(context, expected)


def _stacked_reference(head: MergeHead, masks: torch.Tensor, channels: torch.Tensor, context: torch.Tensor):
    """The definition, one candidate at a time: stack [logit(mask), context], depthwise conv, conv to 1 band."""
    pad = head.config.kernel_size // 2
    out = []
    for mask, c in zip(masks, channels.tolist(), strict=True):
        stack = torch.cat([torch.logit(mask, eps=MASK_EPS)[None], context])[None]
        hidden = F.conv2d(stack, head.depthwise[c][:, None], head.depthwise_bias[c], padding=pad, groups=len(stack[0]))
        out.append(F.conv2d(hidden, head.project[c][None], head.project_bias[c : c + 1], padding=pad)[0, 0])
    return torch.stack(out)


def test_head_equals_the_stacked_per_candidate_convolution() -> None:
    torch.manual_seed(3)
    head = MergeHead(MergeHeadConfig(kernel_size=5), num_thing=3, num_stuff=2)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, 0.5)
    masks = torch.rand(4, 9, 11)
    channels = torch.tensor([2, 0, 2, 1])
    context = context_maps(masks, channels, torch.rand(1, 9, 11), torch.tensor([1]), torch.randn(9, 11), 3, 2)
    got = head(masks, channels, context)
    torch.testing.assert_close(got, _stacked_reference(head, masks, channels, context), rtol=1e-4, atol=1e-4)
    assert head(masks[:0], channels[:0], context).shape == (0, 9, 11)


def test_untrained_head_is_the_identity() -> None:
    head = MergeHead(MergeHeadConfig(), num_thing=2, num_stuff=1)
    masks = torch.rand(3, 6, 7).clamp(MASK_EPS, 1 - MASK_EPS)
    channels = torch.tensor([0, 1, 1])
    context = context_maps(masks, channels, torch.rand(1, 6, 7), torch.tensor([0]), torch.randn(6, 7), 2, 1)
    torch.testing.assert_close(head(masks, channels, context).sigmoid(), masks, rtol=0, atol=1e-6)


def test_hand_built_scene_far_duplicate_vanishes() -> None:
    """Two overlapping car candidates on 6x8, the better-scored one far (normalized depth +1 on its box), the
    other near (-1 elsewhere). The head's car filters add -3 x depth to the logit: the far car falls below the
    mask threshold everywhere and leaves the merge, the near one keeps only its near pixels."""
    h, w = 6, 8
    far = torch.zeros(h, w)
    far[1:4, 1:4] = 0.9
    near = torch.zeros(h, w)
    near[2:5, 2:6] = 0.6
    depth = -torch.ones(h, w)
    depth[1:4, 1:4] = 1.0
    road = torch.full((1, h, w), 0.8)
    head = MergeHead(MergeHeadConfig(kernel_size=1), num_thing=2, num_stuff=2)  # TABLE: things car, person
    with torch.no_grad():
        depth_channel = 1 + 2 + 2
        head.depthwise[0, depth_channel] = 1.0
        head.project[0, depth_channel] = -3.0
    found = Candidates(
        torch.stack([far, near]), torch.tensor([0, 0]), torch.tensor([0.9, 0.8]), road, torch.tensor([0]), None
    )
    with torch.no_grad():
        refined = PanopticInference(merge_head=head).refine(found, depth, TABLE)
    assert float(refined[0].max()) == pytest.approx(torch.sigmoid(torch.logit(torch.tensor(0.9)) - 3).item())
    assert float(refined[0].max()) < 0.5
    torch.testing.assert_close(refined[1, 4, 2:6], (torch.logit(torch.full((4,), 0.6)) + 3).sigmoid())
    classes, scores = torch.tensor([1, 1, 0]), torch.tensor([0.9, 0.8, 0.95])
    result = merge_degeus(torch.cat([refined, road]), classes, scores, TABLE, MergeConfig())
    expected = _grid(["rrrrrrrr", "rrrrrrrr", "rrrrccrr", "rrrrccrr", "rrccccrr", "rrrrrrrr"], {**LEGEND, "c": 26001})
    assert np.array_equal(result.ids, expected)
    # de Geus on the raw masks: the far car (0.9 x 0.9) keeps its 9 pixels, the near one the other 8 of its 12
    raw = merge_degeus(torch.cat([found.thing_masks, road]), classes, scores, TABLE, MergeConfig())
    assert (raw.ids == 26001).sum() == 9 and (raw.ids == 26002).sum() == 8


def test_untrained_head_in_the_model_gives_the_de_geus_result() -> None:
    model = head_model()
    rgb, sparse, classical = frame()
    _, degeus = model.predict(rgb, sparse, classical)
    model.use_merge("learned")
    _, learned = model.predict(rgb, sparse, classical)
    assert len(degeus.segment_ids) > 1
    assert np.array_equal(learned.ids, degeus.ids)


def test_the_head_travels_in_the_model_file(tmp_path: Path) -> None:
    model = head_model(strategy="learned")
    with torch.no_grad():
        model.merge_head.project.normal_(0, 0.1)
    path = tmp_path / "head.safetensors"
    save_model(path, model)
    loaded = load_model(path)
    assert loaded.merge == "learned"
    assert torch.equal(loaded.merge_head.project, model.merge_head.project)
    rgb, sparse, classical = frame()
    assert np.array_equal(loaded.predict(rgb, sparse, classical)[1].ids, model.predict(rgb, sparse, classical)[1].ids)


def test_merge_choice_is_checked() -> None:
    model = head_model()
    for strategy in ("fcn", "learned", "degeus"):
        model.use_merge(strategy)
        assert model.merge == strategy == model.inference.config.merge.strategy
    with pytest.raises(ValueError, match="merge must be one of fcn, degeus, learned, got 'best'"):
        model.use_merge("best")
    without = DepthPanopticModel(tiny_config(), ClassTable.cityscapes())
    with pytest.raises(ValueError, match="needs a learned merge head; this model has none"):
        without.use_merge("learned")
    assert without.merge == "fcn"
    stored_learned = dataclasses.replace(
        tiny_config(), inference=dataclasses.replace(tiny_config().inference, merge=MergeConfig(strategy="learned"))
    )
    with pytest.raises(ValueError, match="needs a learned merge head"):
        DepthPanopticModel(stored_learned, ClassTable.cityscapes())


def test_cli_and_pipeline_refuse_learned_without_a_head(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from depth_panoptic_ros.cli import main

    path = tmp_path / "plain.safetensors"
    save_model(path, DepthPanopticModel(tiny_config(), ClassTable.cityscapes()))
    with pytest.raises(ValueError, match="needs a learned merge head"):
        load_pipeline(None, str(path), merge="learned")
    with pytest.raises(ValueError, match="needs a model"):
        load_pipeline(None, "", merge="degeus")
    assert load_pipeline(None, str(path), merge="degeus").model.merge == "degeus"
    argv = [
        "evaluate",
        "--config",
        str(REPO / "config" / "train_synthetic.yaml"),
        "--checkpoint",
        str(path),
        "--merge",
        "learned",
    ]
    assert main(argv) == 2
    assert "needs a learned merge head; this model has none" in capsys.readouterr().err


def test_node_falls_back_to_the_stored_merge(tmp_path: Path) -> None:
    pytest.importorskip("rclpy")
    from depth_panoptic_ros.ros.runtime.node import load_node_pipeline
    from depth_panoptic_ros.ros.runtime.parameters import NodeParameters

    path = tmp_path / "plain.safetensors"
    save_model(path, DepthPanopticModel(tiny_config(), ClassTable.cityscapes()))
    errors: list[str] = []
    logger = type("Logger", (), {"error": lambda self, text: errors.append(text)})()
    pipeline, state = load_node_pipeline(NodeParameters(model_path=str(path), merge="learned"), logger)
    assert pipeline.model.merge == "fcn" and "merge fcn" in state.description
    assert len(errors) == 1 and "merge 'learned'" in errors[0] and "stored merge 'fcn'" in errors[0]
    pipeline, _ = load_node_pipeline(NodeParameters(model_path=str(path), merge="degeus"), logger)
    assert pipeline.model.merge == "degeus" and len(errors) == 1
    with pytest.raises(ValueError, match="merge: expected empty or one of"):
        NodeParameters(merge="best")


def test_candidates_match_instances_one_to_one_in_score_order() -> None:
    from depth_panoptic_ros.training.merge_head import match_candidates

    gt = torch.zeros(3, 4, 6)
    gt[0, :, :2] = 1.0  # instance 0, class 0: columns 0-1
    gt[1, :, 2:4] = 1.0  # instance 1, class 0: columns 2-3
    gt[2, :, 4:] = 1.0  # instance 2, class 1: columns 4-5
    masks = torch.zeros(5, 4, 6)
    masks[0, :, :2] = 0.9  # exactly instance 0
    masks[1, :, :2] = 0.8  # a duplicate of it: instance 0 is taken, instance 1 overlaps 0 -> unmatched
    masks[2, :, 1:4] = 0.7  # instance 1 with one extra column: IoU 8 / 12 -> matched
    masks[3, :, 4:] = 0.9  # on instance 2 but of class 0: no match
    masks[4, :2, 4:] = 0.9  # class 1, half of instance 2: IoU 0.5 >= 0.3 -> matched
    channels = torch.tensor([0, 0, 0, 0, 1])
    match = match_candidates(masks, channels, gt, torch.tensor([0, 0, 1]))
    assert match.tolist() == [0, -1, 1, -1, 2]
    assert match_candidates(masks, channels, gt[:0], torch.tensor([], dtype=torch.long)).tolist() == [-1] * 5


@pytest.mark.slow
def test_head_training_changes_only_the_head(tmp_path: Path) -> None:
    from test_training import CPU, tiny_config

    from depth_panoptic_ros.training.loop import train

    base = tiny_config().model
    torch.manual_seed(0)
    save_model(tmp_path / "base.safetensors", DepthPanopticModel(base, ClassTable.cityscapes()))
    overrides = [
        f"run.init_model={tmp_path / 'base.safetensors'}",
        "run.train_merge_head=true",
        "model.merge_head.kernel_size=3",
        "model.inference.merge.strategy=learned",
        "model.inference.min_thing_score=0.0",  # an untrained network's candidates are weak: keep them all
        "model.inference.center_threshold=0.0",
        "optimizer.lr=0.01",
        "run.max_iters=6",
        "run.merge_head_batches=2",  # two batches through the networks, cycled three times
    ]
    result = train(tiny_config(*overrides), tmp_path / "run", CPU, progress=False)
    assert len(result.losses) == 6 and all(np.isfinite(result.losses)) and max(result.losses) > 0
    trained = load_model(tmp_path / "run" / "model.safetensors")
    start = load_model(tmp_path / "base.safetensors")
    assert trained.merge == "learned"
    for name, value in start.state_dict().items():
        assert torch.equal(trained.state_dict()[name], value), name  # the networks stayed frozen
    identity = MergeHead(MergeHeadConfig(kernel_size=3), 8, 11)
    assert not torch.equal(trained.merge_head.project, identity.project)
    with pytest.raises(ValueError, match="needs model.merge_head set"):
        tiny_config(*overrides[:2])


def test_export_writes_the_head_beside_the_networks(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from depth_panoptic_ros.cli import main

    model = head_model(strategy="learned")
    with torch.no_grad():
        for p in model.merge_head.parameters():
            p.normal_(0, 0.3)
    save_model(tmp_path / "m.safetensors", model)
    assert (
        main(
            [
                "export",
                "--model",
                str(tmp_path / "m.safetensors"),
                "--onnx",
                str(tmp_path / "m.onnx"),
                "--size",
                "64x128",
            ]
        )
        == 0
    )
    session = ort.InferenceSession(str(tmp_path / "m.merge_head.onnx"))
    masks, channels = torch.rand(5, 32, 32), torch.tensor([0, 7, 3, 3, 1])  # a 128 x 128 padded input / 4
    context = torch.rand(20, 32, 32)
    (got,) = session.run(None, {"masks": masks.numpy(), "thing_channels": channels.numpy(), "context": context.numpy()})
    loaded = load_model(tmp_path / "m.safetensors")
    with torch.no_grad():
        np.testing.assert_allclose(got, loaded.merge_head(masks, channels, context).numpy(), atol=1e-4)


@pytest.mark.slow
def test_release_grafts_a_head_and_stores_the_merge(tmp_path: Path) -> None:
    from test_training import tiny_config as tiny_train_config

    from depth_panoptic_ros.model import read_header
    from depth_panoptic_ros.training.release import release_model

    config = tiny_train_config()
    torch.manual_seed(0)
    save_model(tmp_path / "base.safetensors", DepthPanopticModel(config.model, ClassTable.cityscapes()))
    donor = head_model(seed=1)
    with torch.no_grad():
        donor.merge_head.project.normal_(0, 0.1)
    save_model(tmp_path / "donor.safetensors", donor)
    out = tmp_path / "released.safetensors"
    result = release_model(
        tmp_path / "base.safetensors",
        out,
        config,
        {},
        frames=1,
        merge_head=tmp_path / "donor.safetensors",
        merge="learned",
    )
    released, base = load_model(out), load_model(tmp_path / "base.safetensors")
    assert released.merge == result.merge == read_header(out)["extra"]["evaluation"]["merge"] == "learned"
    torch.testing.assert_close(released.merge_head.project, donor.merge_head.project.half().float())
    for name, value in base.state_dict().items():
        torch.testing.assert_close(
            released.state_dict()[name], value.half().float() if value.is_floating_point() else value
        )
    with pytest.raises(ValueError, match="needs a learned merge head"):
        release_model(tmp_path / "base.safetensors", out, config, {}, frames=1, merge="learned")


def test_thing_mask_iou_by_hand() -> None:
    from depth_panoptic_ros.evaluation.class_iou import ThingMaskIoU

    gt = np.array([[26001, 26001, 26002, 7000], [24001, 0, 0, 7000]])
    pred = np.array([[26005, 7000, 26005, 26005], [24001, 24001, 26001, 0]])
    iou = ThingMaskIoU(ClassTable.cityscapes())
    iou.add(gt, pred)
    iou.add(gt[:, :1], pred[:, :1])  # a second image: one car pixel right, one person pixel right
    # car: gt pixels (0,0),(0,1),(0,2) + (0,0)'; pred car on non-void gt: (0,0),(0,2),(0,3) + (0,0)'; the car
    # predicted on void (1,2) does not count. inter 3, union 4 + 4 - 3 = 5. person: inter 2, union 2 (void
    # pixel (1,1) predicted person does not count).
    assert iou.summary() == {"car": 3 / 5, "person": 1.0}
