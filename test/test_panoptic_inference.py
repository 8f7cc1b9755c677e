"""Panoptic FCN inference on hand-built outputs: peaks, kernel fusion, stuff kernels, masks, the panoptic map."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from depth_panoptic_ros.classes import ClassInfo, ClassTable
from depth_panoptic_ros.panoptic.config import InferenceConfig, PanopticNetConfig
from depth_panoptic_ros.panoptic.inference import (
    PanopticInference,
    fuse_thing_kernels,
    mask_quality,
    region_mean_kernels,
    stuff_kernels,
    thing_candidates,
    thing_score_cuts,
)
from depth_panoptic_ros.panoptic.merge import MergeConfig
from depth_panoptic_ros.panoptic.network import DepthAwarePanopticFCN
from depth_panoptic_ros.panoptic.outputs import PanopticOutputs
from depth_panoptic_ros.panoptic.thing_geometry import ThingGeometryCheck, ThingGeometryConfig
from depth_panoptic_ros.typed_config import from_dict, to_dict

torch.set_num_threads(1)

TABLE = ClassTable(
    (
        ClassInfo(26, "car", True, (0, 0, 142)),
        ClassInfo(24, "person", True, (220, 20, 60)),
        ClassInfo(7, "road", False, (128, 64, 128)),
        ClassInfo(23, "sky", False, (70, 130, 180)),
    )
)
LEVEL_SIZES = ((4, 4), (2, 2), (1, 1), (1, 1), (1, 1))


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# Features (4 channels, 8x8 at stride 4 = a 32x32 padded image): square A, square B, top half, constant.
FEATURES = torch.zeros(1, 4, 8, 8)
FEATURES[0, 0, 1:4, 1:4] = 1
FEATURES[0, 1, 1:4, 5:7] = 1
FEATURES[0, 2, :4] = 1
FEATURES[0, 3] = 1
CAR = torch.tensor([20.0, 0, 0, -10])  # logit +10 on A, -10 elsewhere
PERSON = torch.tensor([0.0, 20, 0, -10])
SKY = torch.tensor([0.0, 0, 20, -10])
ROAD = torch.tensor([0.0, 0, -20, 10])


def scene() -> PanopticOutputs:
    """A car (plus a weaker duplicate of it), a person, a sub-threshold person; sky over road."""
    centers = [torch.full((1, 2, h, w), -30.0) for h, w in LEVEL_SIZES]
    stuff = [torch.full((1, 2, h, w), -10.0) for h, w in LEVEL_SIZES]
    kernels = [torch.zeros(1, 4, h, w) for h, w in LEVEL_SIZES]
    centers[0][0, 0, 1, 1] = 4.0
    kernels[0][0, :, 1, 1] = CAR
    centers[0][0, 0, 3, 3] = 2.0  # the same car seen again: near-identical kernel
    kernels[0][0, :, 3, 3] = CAR * 1.01
    centers[1][0, 1, 0, 1] = 3.0
    kernels[1][0, :, 0, 1] = PERSON
    centers[2][0, 1, 0, 0] = -6.0  # smoothed score ~0.001 < 0.01
    stuff[2][0, :, 0, 0] = torch.tensor([-3.0, 3.0])  # sky (channel 1)
    kernels[2][0, :, 0, 0] = SKY
    stuff[3][0, :, 0, 0] = torch.tensor([3.0, -3.0])  # road
    kernels[3][0, :, 0, 0] = ROAD
    stuff[4][0, :, 0, 0] = torch.tensor([-3.0, 1.0])  # sky again, weaker, with a kernel twice as strong
    kernels[4][0, :, 0, 0] = 2 * SKY
    return PanopticOutputs(FEATURES.clone(), centers, stuff, kernels)


def upsampled_box(first: int, last: int) -> np.ndarray:
    """Cells first..last of an 8-cell indicator, linearly interpolated to 32 pixels (half-pixel centers)."""
    centers = (np.arange(32) + 0.5) / 4 - 0.5
    return np.interp(centers, np.arange(8), ((np.arange(8) >= first) & (np.arange(8) <= last)).astype(float))


def expected_ids(height: int, width: int) -> np.ndarray:
    """Box masks are separable, so their upsampled probability is the outer product of two 1-D profiles."""
    ids = np.where(upsampled_box(0, 3)[:, None] > 0.5, 23000, 7000) * np.ones((1, 32), dtype=np.int32)
    ids[np.outer(upsampled_box(1, 3), upsampled_box(1, 3)) > 0.5] = 26001
    ids[np.outer(upsampled_box(1, 3), upsampled_box(5, 6)) > 0.5] = 24001
    return ids[:height, :width].astype(np.int32)


@pytest.mark.parametrize("strategy", ["fcn", "degeus"])
def test_hand_built_scene_gives_expected_segments(strategy: str) -> None:
    config = InferenceConfig(merge=MergeConfig(strategy=strategy))
    result = PanopticInference(config)(scene(), TABLE, (30, 27))
    np.testing.assert_array_equal(result.ids, expected_ids(30, 27))
    car = sigmoid(4) * 5 / 9 * sigmoid(10.05)  # smoothed peak x mean mask probability (fused kernel 1.005 x CAR)
    person = sigmoid(3) * 5 / 9 * sigmoid(10)
    sky, road = (sigmoid(3) + sigmoid(1)) / 2, sigmoid(3)
    scores = dict(zip(result.segment_ids.tolist(), result.segment_scores.tolist(), strict=True))
    assert scores.keys() == {26001, 24001, 23000, 7000}
    for segment, value in ((26001, car), (24001, person), (23000, sky), (7000, road)):
        assert scores[segment] == pytest.approx(value, rel=1e-4)


def test_segments_before_the_merge() -> None:
    masks, classes, scores = PanopticInference().segments(scene(), TABLE, (32, 32))
    assert masks.shape == (4, 32, 32) and masks.dtype == torch.float32
    assert classes.tolist() == [0, 1, 2, 3]  # things by decreasing score (car, person), then stuff channels
    # Bilinear upsampling is linear: a box of probability hi on lo upsamples to lo + (hi - lo) x profile.
    lo, hi = sigmoid(-10.05), sigmoid(10.05)  # fused car kernel: 1.005 x CAR
    car = lo + (hi - lo) * np.outer(upsampled_box(1, 3), upsampled_box(1, 3))
    np.testing.assert_allclose(masks[0].numpy(), car, atol=1e-6)
    lo, hi = sigmoid(-15), sigmoid(15)  # sky kernel averaged over levels 2 and 4: 1.5 x SKY
    sky = lo + (hi - lo) * upsampled_box(0, 3)[:, None] * np.ones(32)
    np.testing.assert_allclose(masks[3].numpy(), sky, atol=1e-6)


def test_min_thing_score_drops_things_before_the_paste() -> None:
    config = InferenceConfig(min_thing_score=0.54)  # between the person (0.529) and the car (0.546)
    result = PanopticInference(config)(scene(), TABLE, (32, 32))
    expected = expected_ids(32, 32)
    expected[expected == 24001] = 23000  # the person's pixels fall to the sky
    np.testing.assert_array_equal(result.ids, expected)


@pytest.mark.parametrize(
    ("cut", "by_class", "survivors"),
    [
        (0.0, {}, ["car", "person"]),
        (0.0, {"car": 0.55}, ["person"]),  # the car (0.546) is under its own cut, the person (0.529) passes 0
        (0.54, {}, ["car"]),
        (0.54, {"person": 0.5}, ["car", "person"]),  # a class's own cut replaces the global one, even below it
        (0.6, {"car": 0.5}, ["car"]),
        (0.0, {"car": 0.55, "person": 0.53}, []),
    ],
)
def test_each_class_keeps_the_things_scoring_at_least_its_cut(
    cut: float, by_class: dict[str, float], survivors: list[str]
) -> None:
    config = InferenceConfig(min_thing_score=cut, min_thing_score_by_class=by_class)
    found = PanopticInference(config).candidates(scene(), TABLE)
    names = [TABLE.names[TABLE.thing_indices[c]] for c in found.thing_channels.tolist()]
    assert names == survivors  # by decreasing score: the car first


def test_thing_score_cuts_per_channel_and_unknown_classes() -> None:
    config = InferenceConfig(min_thing_score=0.2, min_thing_score_by_class={"person": 0.35})
    assert thing_score_cuts(config, TABLE, "cpu").tolist() == pytest.approx([0.2, 0.35])  # car, person channels
    assert thing_score_cuts(config, TABLE, "cpu") is thing_score_cuts(config, TABLE, "cpu")  # built once
    for name in ("bus", "sky"):  # not in the table; stuff
        bad = InferenceConfig(min_thing_score_by_class={name: 0.3})
        with pytest.raises(ValueError, match=rf"min_thing_score_by_class names \['{name}'\], not thing classes"):
            thing_score_cuts(bad, TABLE, "cpu")


def test_nothing_found_gives_an_all_void_map() -> None:
    outputs = scene()
    for logits in outputs.centers + outputs.stuff:
        logits.fill_(-30.0)
    result = PanopticInference()(outputs, TABLE, (30, 27))
    np.testing.assert_array_equal(result.ids, np.zeros((30, 27), dtype=np.int32))
    assert result.segment_ids.size == 0


def test_thing_candidates_nms_levels_and_kernels() -> None:
    centers = [torch.full((2, 3, 3), -20.0), torch.full((2, 1, 2), -20.0)]
    kernels = [
        torch.arange(9.0).reshape(1, 3, 3).repeat(2, 1, 1),
        100 + torch.arange(2.0).reshape(1, 1, 2).repeat(2, 1, 1),
    ]
    centers[0][0, 1, 1] = 2.0  # class 0 peak
    centers[0][0, 1, 2] = 1.0  # its neighbor: suppressed by the 3x3 max-pool
    centers[1][1, 0, 1] = 4.0  # class 1 peak on the second level
    k, c, s = thing_candidates(centers, kernels, (3, 3), top_k=10, threshold=0.01)
    assert c.tolist() == [1, 0]
    torch.testing.assert_close(k, torch.tensor([[101.0, 101.0], [4.0, 4.0]]))
    # level 2 (1x2, padded 3x3 window): (s + (s + s_other) / 9) / 2; level 1: neighbors included
    peak1 = (sigmoid(4) + (sigmoid(4) + sigmoid(-20)) / 9) / 2
    peak0 = (sigmoid(2) + (sigmoid(2) + sigmoid(1) + 7 * sigmoid(-20)) / 9) / 2
    torch.testing.assert_close(s, torch.tensor([peak1, peak0]))
    k, c, s = thing_candidates(centers, kernels, (3, 3), top_k=1, threshold=0.01)
    assert c.tolist() == [1]
    _, c, _ = thing_candidates(centers, kernels, (3, 3), top_k=10, threshold=0.6)
    assert c.tolist() == []


def test_kernel_fusion_merges_near_identical_kernels_within_a_class_only() -> None:
    kernels = torch.tensor([[1.0, 0, 0], [0.99, 0.1, 0], [1.0, 0, 0], [0.0, 1, 0]])
    classes = torch.tensor([0, 0, 1, 0])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    k, c, s = fuse_thing_kernels(kernels, classes, scores, threshold=0.97)  # cos(k0, k1) = 0.995
    torch.testing.assert_close(k, torch.tensor([[0.995, 0.05, 0], [1.0, 0, 0], [0.0, 1, 0]]))
    assert c.tolist() == [0, 1, 0]
    torch.testing.assert_close(s, torch.tensor([0.9, 0.7, 0.6]))


def test_kernel_fusion_drops_the_groups_whose_lead_is_under_its_minimum() -> None:
    """The same groups lead as without minimums (the member absorbed into the dropped group does not come back);
    only whole groups go."""
    kernels = torch.tensor([[1.0, 0, 0], [0.99, 0.1, 0], [1.0, 0, 0], [0.0, 1, 0]])
    classes, scores = torch.tensor([0, 0, 1, 0]), torch.tensor([0.9, 0.8, 0.7, 0.6])
    k, c, s = fuse_thing_kernels(kernels, classes, scores, 0.97, min_scores=torch.tensor([0.95, 0.95, 0.5, 0.6]))
    torch.testing.assert_close(k, torch.tensor([[1.0, 0, 0], [0.0, 1, 0]]))  # group 0 (with member 1) dropped
    assert c.tolist() == [1, 0]
    torch.testing.assert_close(s, torch.tensor([0.7, 0.6]))  # 0.6 meets its minimum of 0.6


def test_kernel_fusion_chain_follows_the_reference() -> None:
    """A~B and B~C but not A~C: B joins A; C's first match B was absorbed, so C is dropped (as the reference)."""
    angles = torch.tensor([0.0, 30.0, 60.0]).deg2rad()
    kernels = torch.stack((angles.cos(), angles.sin()), dim=1)
    k, c, s = fuse_thing_kernels(kernels, torch.zeros(3, dtype=torch.long), torch.tensor([0.9, 0.5, 0.4]), 0.8)
    torch.testing.assert_close(k, kernels[:2].mean(0, keepdim=True))
    assert c.tolist() == [0] and s.tolist() == [pytest.approx(0.9)]


def test_kernel_fusion_of_nothing_and_of_a_zero_kernel() -> None:
    k, c, s = fuse_thing_kernels(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0), 0.9)
    assert k.shape == (0, 4) and c.numel() == 0 and s.numel() == 0
    k, _, _ = fuse_thing_kernels(torch.zeros(1, 4), torch.zeros(1, dtype=torch.long), torch.ones(1), 0.9)
    torch.testing.assert_close(k, torch.zeros(1, 4))  # no 0/0


def test_region_mean_kernels() -> None:
    kernels = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]])  # (C=2, 2, 2)
    regions = torch.tensor([[[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    out = region_mean_kernels(kernels, regions)
    torch.testing.assert_close(out, torch.tensor([[1.5, 15.0], [4.0, 40.0], [0.0, 0.0]]))
    batched = region_mean_kernels(kernels.expand(2, -1, -1, -1), regions.expand(2, -1, -1, -1))
    torch.testing.assert_close(batched, out.expand(2, -1, -1))


def test_stuff_kernels_average_over_levels_where_present() -> None:
    # Level 1 (1x2): class 0 left (p=0.9), class 1 right (p=0.05 < threshold). Level 2 (1x1): class 0 (p=0.7).
    stuff = [
        torch.tensor([[[logit(0.9), logit(0.01)]], [[logit(0.02), logit(0.05)]]]),
        torch.tensor([[[logit(0.7)]], [[logit(0.1)]]]),
    ]
    kernels = [torch.tensor([[[2.0, 8.0]]]), torch.tensor([[[4.0]]])]
    k, c, s = stuff_kernels(stuff, kernels, threshold=0.1)
    assert c.tolist() == [0]
    torch.testing.assert_close(k, torch.tensor([[3.0]]))  # mean of 2 (left cell) and 4
    torch.testing.assert_close(s, torch.tensor([0.8]))


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_mask_quality_is_mean_probability_inside_the_mask() -> None:
    probs = torch.tensor([[0.9, 0.6, 0.2, 0.1], [0.3, 0.2, 0.1, 0.0]])
    torch.testing.assert_close(mask_quality(probs, 0.5), torch.tensor([0.75, 0.0]))


def test_bad_outputs_are_rejected_by_name() -> None:
    inference = PanopticInference()
    outputs = scene()
    two = PanopticOutputs(
        outputs.features.repeat(2, 1, 1, 1),
        [c.repeat(2, 1, 1, 1) for c in outputs.centers],
        [s.repeat(2, 1, 1, 1) for s in outputs.stuff],
        [k.repeat(2, 1, 1, 1) for k in outputs.kernels],
    )
    with pytest.raises(ValueError, match="got batch 2"):
        inference(two, TABLE, (32, 32))
    three_things = ClassTable((*TABLE.classes, ClassInfo(33, "bicycle", True, (119, 11, 32))))
    with pytest.raises(ValueError, match=r"outputs.centers must be 5 levels of \(1, 3, h, w\)"):
        inference(outputs, three_things, (32, 32))
    with pytest.raises(ValueError, match=r"image_size must be the network input size, at most the padded \(32, 32\)"):
        inference(outputs, TABLE, (33, 20))


def test_inference_config_defaults_round_trip_and_errors() -> None:
    config = InferenceConfig()
    assert (config.top_k, config.center_threshold, config.stuff_threshold, config.similarity_threshold) == (
        200,
        0.01,
        0.1,
        0.97,
    )
    assert config.merge.mask_threshold == 0.5 and config.merge.overlap_threshold == 0.5
    data = to_dict(InferenceConfig(top_k=100, merge=MergeConfig(strategy="degeus")))
    assert data["center_pool_sizes"] == [3, 3, 3, 5, 5] and data["merge"]["strategy"] == "degeus"
    assert from_dict(InferenceConfig, data, "InferenceConfig") == InferenceConfig(
        top_k=100, merge=MergeConfig(strategy="degeus")
    )
    with pytest.raises(ValueError, match=r"InferenceConfig.merge: unknown key\(s\) \['overlap'\]"):
        from_dict(InferenceConfig, {"merge": {"overlap": 0.4}}, "InferenceConfig")
    with pytest.raises(ValueError, match=r"center_pool_sizes must be 5 odd positive ints"):
        InferenceConfig(center_pool_sizes=(3, 3, 4, 5, 5))
    with pytest.raises(ValueError, match=r"similarity_threshold .* \[-1, 1\], got 1.5"):
        InferenceConfig(similarity_threshold=1.5)
    with pytest.raises(ValueError, match=r"stuff_threshold must lie in \[0, 1\], got 'high'"):
        from_dict(InferenceConfig, {"stuff_threshold": "high"}, "InferenceConfig")
    with pytest.raises(ValueError, match=r"InferenceConfig: merge must be a MergeConfig, got float"):
        from_dict(InferenceConfig, {"merge": 0.5}, "InferenceConfig")
    assert InferenceConfig().min_thing_score_by_class == {}
    cuts = InferenceConfig(min_thing_score_by_class={"car": 0.35, "truck": 0.35, "person": 0.25})
    assert from_dict(InferenceConfig, to_dict(cuts), "InferenceConfig") == cuts
    assert cuts.describe_thing_cut() == "0.2 (car, truck: 0.35; person: 0.25)"
    assert InferenceConfig(min_thing_score=0.4).describe_thing_cut() == "0.4"
    with pytest.raises(ValueError, match=r"min_thing_score_by_class\['car'\] must lie in \[0, 1\], got 1.5"):
        InferenceConfig(min_thing_score_by_class={"car": 1.5})
    with pytest.raises(ValueError, match=r"min_thing_score_by_class must map class names to scores, got \[0.3\]"):
        from_dict(InferenceConfig, {"min_thing_score_by_class": [0.3]}, "InferenceConfig")


def test_network_outputs_run_through_inference() -> None:
    torch.manual_seed(0)
    config = PanopticNetConfig(backbone="r18", fpn_channels=32, head_channels=64, embed_dim=32, num_stuff_classes=2)
    net = DepthAwarePanopticFCN(config).eval()
    table = ClassTable(tuple(ClassInfo(10 + i, f"thing{i}", True, (i, i, i)) for i in range(8)) + TABLE.classes[2:])
    g = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        outputs = net(torch.randn(1, 3, 67, 101, generator=g), torch.randn(1, 1, 67, 101, generator=g))
    result = PanopticInference(InferenceConfig(min_thing_score=0.0))(outputs, table, (67, 101))
    assert result.ids.shape == (67, 101) and result.ids.dtype == np.int32
    assert set(np.unique(result.ids // 1000).tolist()) <= {0, *table.ids.tolist()}
    assert set(np.unique(result.ids).tolist()) - {0} == set(result.segment_ids.tolist())


class SyncCounter(TorchDispatchMode):
    """Counts the dispatched ops that make the host wait for a GPU: reading a value (item, bool), a selection
    whose size depends on values (nonzero, a boolean index, unique, masked_select, bincount, which reads its
    maximum) and a tensor built from host data (lift_fresh: on a GPU a host->device copy)."""

    SYNCING = {
        "aten.item.default",
        "aten._local_scalar_dense.default",
        "aten.is_nonzero.default",
        "aten.nonzero.default",
        "aten.masked_select.default",
        "aten._unique2.default",
        "aten.unique_dim.default",
        "aten.unique_consecutive.default",
        "aten.bincount.default",
        "aten.lift_fresh.default",
    }

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        boolean_index = name.startswith(("aten.index.Tensor", "aten.index_put")) and any(
            index is not None and index.dtype in (torch.bool, torch.uint8) for index in args[1]
        )
        if name in self.SYNCING or boolean_index:
            self.ops.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("strategy", ["fcn", "degeus"])
def test_post_processing_synchronizes_a_few_times_a_frame(strategy: str) -> None:
    """The hand-built scene with a car that floats (the thing check drops it, exercising its full path) and a
    stray piece of it (a fragment). A CPU run sees 7 of the GPU's 10 synchronizations: not the copies to the host
    (merge validation and paste order, the fragment step's owner map, the result), which do not dispatch on a CPU;
    it sees 1 that a GPU skips (the given-back map, painted run by run on the host, wrapped as a tensor). Each
    boolean index, item or table built per frame that comes back adds one (on the shipped model: 48 before)."""
    outputs = scene()
    outputs.features[0, 0, 6, 5] = 1  # the car's kernel also lights one cell far below it: a fragment
    heights = np.zeros((8, 7), np.float32)
    heights[1:4, 1:4] = 1.0  # the car floats 1 m above the ground; the person stands
    heights[1:4, 5:7] = np.linspace(0.0, 1.7, 3, dtype=np.float32)[:, None]
    check = ThingGeometryCheck(np.full((8, 7), 10.0, np.float32), heights, ThingGeometryConfig())
    inference = PanopticInference(InferenceConfig(merge=MergeConfig(strategy=strategy)))
    first = inference(outputs, TABLE, (30, 27), check=check)  # builds the per-device tables, once
    with SyncCounter() as counter:
        again = inference(outputs, TABLE, (30, 27), check=check)
    assert set(first.segment_ids.tolist()) == set(again.segment_ids.tolist()) == {24001, 23000, 7000}  # no car
    assert len(counter.ops) <= 8, counter.ops
