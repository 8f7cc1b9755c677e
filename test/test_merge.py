"""Panoptic merges: hand-computed maps on a 6x8 scene, the published rules one by one, and agreement with
straightforward loop transcriptions of the two heuristics on random scenes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depth_panoptic_ros.classes import ClassInfo, ClassTable
from depth_panoptic_ros.panoptic.merge import MergeConfig, merge_degeus, merge_fcn, merge_panoptic

torch.set_num_threads(1)

# index: 0 road (stuff), 1 car, 2 person, 3 sky (stuff)
TABLE = ClassTable(
    (
        ClassInfo(7, "road", False, (128, 64, 128)),
        ClassInfo(26, "car", True, (0, 0, 142)),
        ClassInfo(24, "person", True, (220, 20, 60)),
        ClassInfo(23, "sky", False, (70, 130, 180)),
    )
)
ROAD, CAR, PERSON, SKY = 0, 1, 2, 3


def _scene() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Four things and two stuff masks on 6x8; comments give score x probability where de Geus compares them."""
    h, w = 6, 8
    a = np.zeros((h, w))  # car 0.9, rows 1-3 x cols 1-3; prob 0.6 (0.54) where it overlaps b
    a[1:4, 1:4] = 0.95
    a[2:4, 2:4] = 0.6
    b = np.zeros((h, w))  # car 0.8, rows 2-4 x cols 2-5, prob 0.9 (0.72); 0.7 (0.56) at row 4 cols 4-5
    b[2:5, 2:6] = 0.9
    b[4, 4:6] = 0.7
    c = np.zeros((h, w))  # person 0.7, rows 3-4 x cols 3-5, prob 0.9 (0.63): inside b entirely
    c[3:5, 3:6] = 0.9
    d = np.zeros((h, w))  # person 0.6, rows 0-1 x cols 6-7, alone
    d[0:2, 6:8] = 0.9
    road = np.full((h, w), 0.2)  # road 0.95: rows 3-5; 0.25 (exactly alpha) at (5, 0)
    road[3:] = 0.8
    road[5, 0] = 0.25
    road[5, 6:] = 0.2  # below alpha with sky too: de Geus leaves (5, 6:8) void, FCN takes the argmax
    sky = np.full((h, w), 0.7)  # sky 0.5: rows 0-2
    sky[3:] = 0.1
    masks = torch.tensor(np.stack([a, b, c, d, road, sky]), dtype=torch.float32)
    classes = torch.tensor([CAR, CAR, PERSON, PERSON, ROAD, SKY])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.95, 0.5])
    return masks, classes, scores


def _grid(rows: list[str], legend: dict[str, int]) -> np.ndarray:
    return np.array([[legend[ch] for ch in row] for row in rows], dtype=np.int32)


LEGEND = {"r": 7000, "s": 23000, ".": 0}

# FCN: a keeps the overlap (pasted first); b keeps 8 of 12 px (4/12 taken <= 0.5); c lies inside a|b -> skipped,
# so d becomes person 1; stuff by argmax on free pixels, including (5, 6:8) where road 0.2 beats sky 0.1.
FCN_EXPECTED = [
    "ssssssdd",
    "saaassdd",
    "saaabbss",
    "raaabbrr",
    "rrbbbbrr",
    "rrrrrrrr",
]
FCN_LEGEND = LEGEND | {"a": 26001, "b": 26002, "d": 24001}

# de Geus: b (0.72) beats a (0.54) on their overlap; c (0.63) beats b (0.56) at row 4 cols 4-5 and is person 1,
# d person 2; (5, 0) is filled (road 0.25 >= alpha), (5, 6:8) is void (best stuff 0.2 < alpha).
DEGEUS_EXPECTED = [
    "ssssssdd",
    "saaassdd",
    "sabbbbss",
    "rabbbbrr",
    "rrbbccrr",
    "rrrrrr..",
]
DEGEUS_LEGEND = LEGEND | {"a": 26001, "b": 26002, "c": 24001, "d": 24002}


def _segments(result) -> dict[int, float]:
    return dict(zip(result.segment_ids.tolist(), result.segment_scores.tolist(), strict=True))


def test_fcn_hand_computed_scene() -> None:
    result = merge_fcn(*_scene(), TABLE, MergeConfig())
    np.testing.assert_array_equal(result.ids, _grid(FCN_EXPECTED, FCN_LEGEND))
    assert result.ids.dtype == np.int32
    assert _segments(result) == pytest.approx({26001: 0.9, 26002: 0.8, 24001: 0.6, 7000: 0.95, 23000: 0.5})


def test_degeus_hand_computed_scene() -> None:
    result = merge_degeus(*_scene(), TABLE, MergeConfig())
    np.testing.assert_array_equal(result.ids, _grid(DEGEUS_EXPECTED, DEGEUS_LEGEND))
    expected = {26001: 0.9, 26002: 0.8, 24001: 0.7, 24002: 0.6, 7000: 0.95, 23000: 0.5}
    assert _segments(result) == pytest.approx(expected)


def test_dispatch_by_name() -> None:
    for strategy, expected, legend in (("fcn", FCN_EXPECTED, FCN_LEGEND), ("degeus", DEGEUS_EXPECTED, DEGEUS_LEGEND)):
        result = merge_panoptic(strategy, *_scene(), TABLE, MergeConfig(strategy=strategy))
        np.testing.assert_array_equal(result.ids, _grid(expected, legend))
    with pytest.raises(ValueError, match="strategy"):
        merge_panoptic("majority", *_scene(), TABLE, MergeConfig())


@pytest.mark.parametrize(
    ("taken", "expected"),
    [(2, [26001, 26001, 26001, 26002, 26002, 0]), (3, [26001, 26001, 26001, 0, 0, 0])],
)
def test_fcn_skips_a_mask_more_than_half_taken(taken: int, expected: list[int]) -> None:
    """A 4-px car behind a 3-px higher-scored one: 2 px taken (exactly 50 %) is kept, 3 px taken is dropped."""
    masks = torch.zeros(2, 1, 6)
    masks[0, 0, :3] = 0.9
    masks[1, 0, 3 - taken : 7 - taken] = 0.9
    result = merge_fcn(masks, torch.tensor([CAR, CAR]), torch.tensor([0.9, 0.8]), TABLE, MergeConfig())
    np.testing.assert_array_equal(result.ids[0], expected)


def test_input_order_does_not_matter() -> None:
    masks, classes, scores = _scene()
    perm = torch.tensor([5, 2, 0, 4, 3, 1])
    for merge in (merge_fcn, merge_degeus):
        a = merge(masks, classes, scores, TABLE, MergeConfig())
        b = merge(masks[perm], classes[perm], scores[perm], TABLE, MergeConfig())
        np.testing.assert_array_equal(a.ids, b.ids)
        assert _segments(a) == _segments(b)


def test_small_stuff_becomes_void() -> None:
    """FCN: sky has 12 px and road 15 px of 48; de Geus: sky 12 px, road 13 px."""
    fcn = merge_fcn(*_scene(), TABLE, MergeConfig(stuff_min_area_fraction=13 / 48))
    expected = _grid(FCN_EXPECTED, FCN_LEGEND)
    np.testing.assert_array_equal(fcn.ids, np.where(expected == 23000, 0, expected))
    assert 23000 not in fcn.segment_ids and 7000 in fcn.segment_ids
    at_limit = merge_fcn(*_scene(), TABLE, MergeConfig(stuff_min_area_fraction=12 / 48))
    np.testing.assert_array_equal(at_limit.ids, expected)  # an area equal to the limit is kept

    degeus = merge_degeus(*_scene(), TABLE, MergeConfig(degeus_stuff_min_fraction=12.5 / 48))
    expected = _grid(DEGEUS_EXPECTED, DEGEUS_LEGEND)
    np.testing.assert_array_equal(degeus.ids, np.where(expected == 23000, 0, expected))


def test_degeus_alpha_decides_between_stuff_and_void() -> None:
    masks, classes, scores = _scene()
    strict = merge_degeus(masks, classes, scores, TABLE, MergeConfig(degeus_alpha=0.3))
    assert strict.ids[5, 0] == 0  # road 0.25 < 0.3
    lenient = merge_degeus(masks, classes, scores, TABLE, MergeConfig(degeus_alpha=0.2))
    np.testing.assert_array_equal(lenient.ids[5], [7000] * 8)


@pytest.mark.parametrize("merge", [merge_fcn, merge_degeus])
def test_empty_input_is_all_void(merge) -> None:
    result = merge(torch.zeros(0, 4, 5), torch.zeros(0, dtype=torch.long), torch.zeros(0), TABLE, MergeConfig())
    np.testing.assert_array_equal(result.ids, np.zeros((4, 5), np.int32))
    assert result.segment_ids.shape == (0,) and result.segment_scores.shape == (0,)


@pytest.mark.parametrize("merge", [merge_fcn, merge_degeus])
def test_things_only_leaves_the_rest_void(merge) -> None:
    masks, classes, scores = _scene()
    result = merge(masks[:4], classes[:4], scores[:4], TABLE, MergeConfig())
    assert set(np.unique(result.ids).tolist()) <= {0, 26001, 26002, 24001, 24002}
    assert (result.ids == 0).sum() == 48 - (masks[:4] > 0.5).any(0).sum()


def test_bad_input_is_named() -> None:
    masks, classes, scores = _scene()
    cfg = MergeConfig()
    with pytest.raises(ValueError, match="masks"):
        merge_fcn(masks[0], classes, scores, TABLE, cfg)
    with pytest.raises(ValueError, match="classes"):
        merge_fcn(masks, classes[:3], scores, TABLE, cfg)
    with pytest.raises(ValueError, match=r"classes must be indices in \[0, 4\)"):
        merge_fcn(masks, classes + 1, scores, TABLE, cfg)
    with pytest.raises(ValueError, match="scores"):
        merge_degeus(masks, classes, scores * 2, TABLE, cfg)
    with pytest.raises(ValueError, match="one mask per stuff class"):
        merge_degeus(masks, torch.tensor([CAR, CAR, PERSON, PERSON, ROAD, ROAD]), scores, TABLE, cfg)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"strategy": "panoptic_deeplab"},
        {"mask_threshold": 1.5},
        {"overlap_threshold": -0.1},
        {"degeus_alpha": 2.0},
        {"drop_thing_fragments": "yes"},
    ],
)
def test_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        MergeConfig(**kwargs)


@pytest.mark.parametrize("merge", [merge_fcn, merge_degeus])
def test_thing_fragments_go_to_stuff(merge) -> None:
    """A car mask of a 3x2 blob, a 1-px piece touching it at a corner (the same part, 8-connected) and a 2-px piece
    apart: the piece apart becomes road, as if no thing had claimed it; kept with drop_thing_fragments off."""
    car = torch.zeros(4, 6)
    car[0:3, 0:2] = 0.9
    car[3, 2] = 0.9  # touches (2, 1) at a corner
    car[0, 4:6] = 0.9  # apart
    masks = torch.stack([car, torch.full((4, 6), 0.8)])
    classes, scores = torch.tensor([CAR, ROAD]), torch.tensor([0.9, 0.9])
    legend = {"c": 26001, ".": 7000}
    kept = merge(masks, classes, scores, TABLE, MergeConfig(drop_thing_fragments=False))
    np.testing.assert_array_equal(kept.ids, _grid(["cc..cc", "cc....", "cc....", "..c..."], legend))
    dropped = merge(masks, classes, scores, TABLE, MergeConfig())
    np.testing.assert_array_equal(dropped.ids, _grid(["cc....", "cc....", "cc....", "..c..."], legend))
    assert _segments(dropped) == pytest.approx({26001: 0.9, 7000: 0.9})


@pytest.mark.parametrize("merge", [merge_fcn, merge_degeus])
def test_thing_parts_of_equal_size_keep_the_first_in_raster_order(merge) -> None:
    person = torch.zeros(3, 7)
    person[2, 0:2] = 0.9  # starts later in raster order
    person[0, 5:7] = 0.9  # starts first
    masks, classes, scores = person[None], torch.tensor([PERSON]), torch.tensor([0.8])
    np.testing.assert_array_equal(
        merge(masks, classes, scores, TABLE, MergeConfig()).ids, [[0] * 5 + [24001] * 2, [0] * 7, [0] * 7]
    )


def test_thing_fragments_match_opencv_components() -> None:
    """ThingRuns.drop_fragments on random maps of blobs and speckle (diagonal contacts, ties, one-row and
    one-column maps) against OpenCV's 8-connected component labelling; then drop_instances adds every pixel of
    the failing instances, fragments or not."""
    import cv2

    from depth_panoptic_ros.panoptic.fragments import ThingRuns

    rng = np.random.default_rng(7)
    for _ in range(300):
        h, w = rng.integers(1, 40, 2)
        coarse = rng.integers(-1, 4, (max(h // 3, 1), max(w // 3, 1))).astype(np.float32)
        owner = cv2.resize(coarse, (int(w), int(h)), interpolation=cv2.INTER_NEAREST).astype(np.int64)
        speckle = rng.random((h, w)) < 0.1
        owner[speckle] = rng.integers(-1, 4, speckle.sum())
        parts = ThingRuns(torch.from_numpy(owner))
        parts.drop_instances(np.zeros(4, bool))
        assert "runs" not in vars(parts) and not parts.given_back().any()  # nothing given back: no runs needed
        parts.drop_fragments()
        fragments = _fragments(owner)
        np.testing.assert_array_equal(parts.given_back().numpy(), fragments)
        failing = rng.random(4) < 0.4
        parts.drop_instances(failing)
        expected = fragments | np.isin(owner, np.flatnonzero(failing))
        np.testing.assert_array_equal(parts.given_back().numpy(), expected)


# --- independent transcriptions: one mask at a time, numpy, as the papers describe them -----------------------


Reference = tuple[np.ndarray, dict[int, float]]


def _fragments(owner: np.ndarray) -> np.ndarray:
    """Pixels of each instance (owner >= 0) outside its largest 8-connected part, found with OpenCV's component
    labelling; of equal sizes the part whose first pixel comes first in raster order stays (OpenCV's label order
    is not that order)."""
    import cv2

    fragment = np.zeros(owner.shape, bool)
    for i in np.unique(owner[owner >= 0]):
        n, labels, stats, _ = cv2.connectedComponentsWithStats((owner == i).astype(np.uint8), connectivity=8)
        first = [np.flatnonzero(labels == label)[0] for label in range(1, n)]
        best = 1 + min(range(n - 1), key=lambda k: (-stats[k + 1, cv2.CC_STAT_AREA], first[k]))
        fragment |= (labels > 0) & (labels != best)
    return fragment


def _reference_fcn(
    masks: np.ndarray, classes: np.ndarray, scores: np.ndarray, table: ClassTable, drop: bool
) -> Reference:
    """Panoptic FCN's combine_thing_and_stuff, mask by mask; with ``drop``, thing fragments freed for stuff."""
    out = np.zeros(masks.shape[1:], np.int32)
    segments: dict[int, float] = {}
    taken = np.zeros(masks.shape[1:], bool)
    owner = np.full(masks.shape[1:], -1)
    count: dict[int, int] = {}
    order = np.argsort(-scores, kind="stable")
    for i in order[table.is_thing[classes[order]]]:
        mask = masks[i] > 0.5
        area, overlap = mask.sum(), (mask & taken).sum()
        if area == 0 or overlap / area > 0.5:
            continue
        mask &= ~taken
        count[classes[i]] = count.get(classes[i], 0) + 1
        out[mask] = table.ids[classes[i]] * 1000 + count[classes[i]]
        segments[int(table.ids[classes[i]]) * 1000 + count[classes[i]]] = float(scores[i])
        taken |= mask
        owner[mask] = i
    if drop:
        fragment = _fragments(owner)
        out[fragment], taken[fragment] = 0, False
    stuff = order[~table.is_thing[classes[order]]]
    best = np.argmax(masks[stuff], axis=0)
    for k, i in enumerate(stuff):
        region = (best == k) & ~taken
        if region.sum() >= masks[0].size / 1024:
            out[region] = table.ids[classes[i]] * 1000
            segments[int(table.ids[classes[i]]) * 1000] = float(scores[i])
    return out, segments


def _reference_degeus(
    masks: np.ndarray, classes: np.ndarray, scores: np.ndarray, table: ClassTable, drop: bool
) -> Reference:
    """de Geus et al.: the highest score x probability wins each pixel (with ``drop``, thing fragments freed);
    stuff >= alpha on the rest; then small stuff and emptied instances removed and instances numbered in score
    order."""
    shape = masks.shape[1:]
    order = np.argsort(-scores, kind="stable")
    best, owner = np.full(shape, -np.inf), np.full(shape, -1)
    for i in order[table.is_thing[classes[order]]]:
        value = np.where(masks[i] > 0.5, masks[i] * scores[i], -np.inf)
        better = value > best
        best[better], owner[better] = value[better], i
    if drop:
        owner[_fragments(owner)] = -1
    stuff_best, stuff_owner = np.full(shape, -np.inf), np.full(shape, -1)
    for i in order[~table.is_thing[classes[order]]]:
        better = masks[i] > stuff_best
        stuff_best[better], stuff_owner[better] = masks[i][better], i
    owner = np.where(owner >= 0, owner, np.where(stuff_best >= 0.25, stuff_owner, -1))
    out = np.zeros(shape, np.int32)
    segments: dict[int, float] = {}
    count: dict[int, int] = {}
    for i in order:
        region = owner == i
        if not region.any():
            continue
        if table.is_thing[classes[i]]:
            count[classes[i]] = count.get(classes[i], 0) + 1
            segment = int(table.ids[classes[i]]) * 1000 + count[classes[i]]
        elif region.sum() >= masks[0].size / 512:
            segment = int(table.ids[classes[i]]) * 1000
        else:
            continue
        out[region] = segment
        segments[segment] = float(scores[i])
    return out, segments


def _random_scene(seed: int, table: ClassTable, h: int = 48, w: int = 64) -> tuple[np.ndarray, ...]:
    """Overlapping random boxes of noisy probability for things; noisy full-image maps for every stuff class."""
    rng = np.random.default_rng(seed)
    n_things = 25
    masks = rng.uniform(0.0, 0.45, (n_things, h, w))
    for m in masks:
        y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
        m[y : y + rng.integers(3, h // 2), x : x + rng.integers(3, w // 2)] += rng.uniform(0.3, 0.6)
    stuff = table.stuff_indices
    stuff_masks = rng.uniform(0.0, 0.6, (len(stuff), h, w)) ** 2
    stuff_masks[0] *= 0.6  # a rare stuff class, so that small-stuff removal happens
    classes = np.concatenate([rng.choice(table.thing_indices, n_things), stuff])
    scores = rng.uniform(0.05, 1.0, len(classes))
    return np.clip(np.concatenate([masks, stuff_masks]), 0, 1), classes, scores


@pytest.mark.parametrize("drop", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_mask_by_mask_transcriptions(seed: int, drop: bool) -> None:
    table = ClassTable.cityscapes()
    masks, classes, scores = _random_scene(seed, table)
    masks, scores = masks.astype(np.float32), scores.astype(np.float32)
    config = MergeConfig(drop_thing_fragments=drop)
    args = (torch.from_numpy(masks), torch.from_numpy(classes), torch.from_numpy(scores), table, config)
    for merge, reference in ((merge_fcn, _reference_fcn), (merge_degeus, _reference_degeus)):
        result = merge(*args)
        expected_ids, expected_segments = reference(masks, classes, scores, table, drop)
        np.testing.assert_array_equal(result.ids, expected_ids)
        assert _segments(result) == expected_segments
        if drop:  # the random boxes over noise leave fragments: the rule is exercised, not vacuous
            assert (result.ids != merge(*args[:-1], MergeConfig(drop_thing_fragments=False)).ids).any()


def test_coco_ground_truth_round_trips(coco_sample) -> None:
    """Real COCO panoptic ground truth as certain, disjoint masks: both merges must give it back, numbered in
    input order (equal scores), void kept by de Geus (no stuff reaches alpha there) and filled by FCN's argmax."""
    import json

    import cv2

    categories = json.loads((coco_sample / "panoptic_coco_categories.json").read_text())
    table = ClassTable(tuple(ClassInfo(c["id"], c["name"], bool(c["isthing"]), tuple(c["color"])) for c in categories))
    annotations = json.loads((coco_sample / "panoptic_examples.json").read_text())["annotations"]
    # ground truth instances may come in parts (an occluder across them): kept whole here
    config = MergeConfig(stuff_min_area_fraction=0.0, degeus_stuff_min_fraction=0.0, drop_thing_fragments=False)
    for annotation in annotations:
        bgr = cv2.imread(str(coco_sample / "panoptic_examples" / annotation["file_name"]), cv2.IMREAD_COLOR)
        png_ids = bgr.astype(np.int64) @ np.array([256**2, 256, 1])  # id = R + 256 G + 256^2 B
        segments = annotation["segments_info"]
        expected = np.zeros(png_ids.shape, np.int32)
        count: dict[int, int] = {}
        for segment in segments:
            category = segment["category_id"]
            thing = table.is_thing[table.index_of_id[category]]
            count[category] = count.get(category, 0) + 1
            expected[png_ids == segment["id"]] = category * 1000 + (count[category] if thing else 0)
        masks = torch.from_numpy(np.stack([png_ids == s["id"] for s in segments])).float()
        assert masks.sum((1, 2)).tolist() == [s["area"] for s in segments]  # the PNG was decoded right
        classes = torch.tensor([table.index_of_id[s["category_id"]] for s in segments])
        scores = torch.ones(len(segments))
        np.testing.assert_array_equal(merge_degeus(masks, classes, scores, table, config).ids, expected)
        fcn = merge_fcn(masks, classes, scores, table, config).ids
        void = expected == 0
        assert void.any()
        np.testing.assert_array_equal(fcn[~void], expected[~void])
        assert np.isin(fcn[void], table.ids[table.stuff_indices] * 1000).all()


@pytest.mark.gpu
@pytest.mark.parametrize("merge", [merge_fcn, merge_degeus])
def test_cuda_matches_cpu(merge) -> None:
    table = ClassTable.cityscapes()
    masks, classes, scores = (torch.tensor(a) for a in _random_scene(3, table, 256, 512))
    masks, scores = masks.float(), scores.float()
    on_cpu = merge(masks, classes, scores, table, MergeConfig())
    on_gpu = merge(masks.cuda(), classes.cuda(), scores.cuda(), table, MergeConfig())
    np.testing.assert_array_equal(on_cpu.ids, on_gpu.ids)
    np.testing.assert_array_equal(on_cpu.segment_ids, on_gpu.segment_ids)
    np.testing.assert_array_equal(on_cpu.segment_scores, on_gpu.segment_scores)
