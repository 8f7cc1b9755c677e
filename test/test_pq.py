"""Panoptic quality: hand-computed cases, the COCO sample, and an independent panopticapi-style reference."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from depth_panoptic_ros import pq_compute
from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.cli import main
from depth_panoptic_ros.evaluation.pq import Category, PQAccumulator, Segments, joint_histogram, read_panoptic_png

CATEGORIES = [
    Category(1, "car", True),
    Category(2, "person", True),
    Category(3, "road", False),
    Category(4, "sky", False),
]


def image(gt: list[int], gt_cats: dict[int, int], pred: list[int], pred_cats: dict[int, int], crowd=()) -> tuple:
    """One-row maps and their segment lists (category per id; ``crowd`` lists crowd ground-truth ids)."""
    gt_seg = Segments(list(gt_cats), list(gt_cats.values()), [i in crowd for i in gt_cats])
    pred_seg = Segments(list(pred_cats), list(pred_cats.values()), [False] * len(pred_cats))
    return np.array([gt]), gt_seg, np.array([pred]), pred_seg


def summary_of(*images: tuple) -> dict:
    accumulator = PQAccumulator(CATEGORIES)
    for args in images:
        accumulator.add(*args)
    return accumulator.summary()


# car: inter 4, pred area 6 (2 on void), gt 4 -> union 6 + 4 - 4 - 2 = 4, IoU 1 (4/6 if void counted)
# road: inter 3, pred area 3, gt 4 -> union 4, IoU 0.75
VOID_CASE = image([1, 1, 1, 1, 0, 0, 3, 3, 3, 3], {1: 1, 3: 3}, [5, 5, 5, 5, 5, 5, 7, 7, 7, 0], {5: 1, 7: 3})
# car: inter 2, union 2 + 4 - 2 = 4, IoU exactly 0.5 -> no match: car FN 1 and FP 1 (pred 5 is not on void)
# road: pred 7 area 6, inter 4, gt 4 -> union 6, IoU 2/3 -> TP
HALF_CASE = image([1, 1, 1, 1, 3, 3, 3, 3], {1: 1, 3: 3}, [5, 5, 7, 7, 7, 7, 7, 7], {5: 1, 7: 3})


def test_union_leaves_out_the_predictions_void_pixels() -> None:
    result = summary_of(VOID_CASE)
    assert result["per_class"]["car"] == pytest.approx({"pq": 1.0, "sq": 1.0, "rq": 1.0})
    assert result["per_class"]["road"] == pytest.approx({"pq": 0.75, "sq": 0.75, "rq": 1.0})
    # person and sky have no TP, FP or FN: left out of the means (n = 2)
    assert set(result["per_class"]) == {"car", "road"}
    assert result["All"] == pytest.approx({"pq": 0.875, "sq": 0.875, "rq": 1.0, "n": 2})
    assert result["Things"] == pytest.approx({"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 1})
    assert result["Stuff"] == pytest.approx({"pq": 0.75, "sq": 0.75, "rq": 1.0, "n": 1})


def test_iou_of_exactly_one_half_is_not_a_match() -> None:
    result = summary_of(HALF_CASE)
    assert result["per_class"]["car"] == pytest.approx({"pq": 0.0, "sq": 0.0, "rq": 0.0})  # 0 / (0 + .5 + .5)
    assert result["per_class"]["road"] == pytest.approx({"pq": 2 / 3, "sq": 2 / 3, "rq": 1.0})
    assert result["All"]["pq"] == pytest.approx(1 / 3)


def test_counts_accumulate_over_images_before_the_ratio() -> None:
    result = summary_of(VOID_CASE, HALF_CASE)
    # car: TP 1 (IoU 1), FP 1, FN 1 -> 1 / (1 + .5 + .5) = 0.5; road: TP 2, IoU 0.75 + 2/3 -> PQ 17/24, SQ 17/24
    assert result["per_class"]["car"] == pytest.approx({"pq": 0.5, "sq": 1.0, "rq": 0.5})
    assert result["per_class"]["road"] == pytest.approx({"pq": 17 / 24, "sq": 17 / 24, "rq": 1.0})


def test_crowd_rules() -> None:
    # gt:   car instance 1 (px 0-3), car crowd 2 (px 4-7), road 3 (px 8-11)
    # pred: 5 car = px 0-3 -> IoU 1 with gt 1: TP
    #       6 car = px 5-8, 3 of 4 px on the car crowd -> ignored, not FP
    #       7 car = px 4 and 9, 1 of 2 px on crowd (exactly half, not more) -> FP
    #       9 road = px 10-11, IoU 2/4 = 0.5 with road -> road FN 1 and FP 1
    # the unmatched crowd segment is not a false negative
    gt = [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    pred = [5, 5, 5, 5, 7, 6, 6, 6, 6, 7, 9, 9]
    result = summary_of(image(gt, {1: 1, 2: 1, 3: 3}, pred, {5: 1, 6: 1, 7: 1, 9: 3}, crowd={2}))
    assert result["per_class"]["car"] == pytest.approx({"pq": 2 / 3, "sq": 1.0, "rq": 2 / 3})  # 1 / (1 + .5)
    assert result["per_class"]["road"] == pytest.approx({"pq": 0.0, "sq": 0.0, "rq": 0.0})


def test_crowd_of_another_category_does_not_excuse_a_prediction() -> None:
    # a person prediction lying entirely on a *car* crowd region is a person FP; car has nothing to count
    result = summary_of(image([2, 2, 2, 2], {2: 1}, [8, 8, 8, 8], {8: 2}, crowd={2}))
    assert set(result["per_class"]) == {"person"}
    assert result["All"] == pytest.approx({"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 1})
    assert np.isnan(result["Stuff"]["pq"]) and result["Stuff"]["n"] == 0


def test_add_ids_uses_cityscapes_conventions() -> None:
    table = ClassTable.cityscapes()  # car id 26 (thing), road id 7 (stuff); id 1 (ego vehicle) is not in it
    # gt car 26001 (2 px) = pred 26005: TP, IoU 1; gt 26000 is a car crowd region, pred 26007 lies on it: ignored;
    # road: pred area 4, 2 px on the ego vehicle (void), inter 2, gt 2 -> union 4 + 2 - 2 - 2 = 2, IoU 1
    gt = np.array([[26001, 26001, 26000, 26000, 7000, 7000, 1000, 1000]])
    pred = np.array([[26005, 26005, 26007, 26007, 7000, 7000, 7000, 7000]])
    accumulator = PQAccumulator.from_class_table(table)
    accumulator.add_ids(gt, pred, table)
    result = accumulator.summary()
    assert result["All"] == pytest.approx({"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 2})
    assert set(result["per_class"]) == {"car", "road"}
    with pytest.raises(ValueError, match=r"outside the class table: \[1000\]"):
        accumulator.add_ids(gt, np.array([[26005, 26005, 26007, 26007, 7000, 7000, 1000, 1000]]), table)


def test_bad_inputs_are_named() -> None:
    gt, gt_seg, pred, pred_seg = VOID_CASE
    accumulator = PQAccumulator(CATEGORIES)
    with pytest.raises(ValueError, match=r"prediction map holds ids missing from its segment list: \[7\]"):
        accumulator.add(gt, gt_seg, pred, Segments([5], [1], [False]))
    with pytest.raises(ValueError, match=r"listed but absent from the map: \[11\]"):
        accumulator.add(gt, gt_seg, pred, Segments([5, 7, 11], [1, 3, 3], [False] * 3))
    with pytest.raises(ValueError, match=r"unknown category ids \[9\]"):
        accumulator.add(gt, gt_seg, pred, Segments([5, 7], [1, 9], [False] * 2))
    with pytest.raises(ValueError, match="same shape"):
        accumulator.add(gt, gt_seg, pred[:, :5], pred_seg)
    with pytest.raises(ValueError, match="unique"):
        Segments([5, 5], [1, 1], [False, False])


@pytest.mark.parametrize("dtype", [np.uint32, np.int64, np.int32, np.uint8])
def test_joint_histogram_counts_every_pair_of_ids(dtype) -> None:
    rng = np.random.default_rng(7)
    gt = np.kron(rng.integers(0, 6, (5, 7)), np.ones((9, 11), np.int64))  # blocks: runs cross row ends
    pred = np.roll(gt, (2, 3), axis=(0, 1))
    pred[rng.random(pred.shape) < 0.05] = 9  # scattered single pixels: runs of length 1
    gt_list, pred_list = np.array([3, 1, 4, 5, 2]), np.array([9, 5, 2, 1, 3, 4])
    # a transposed (non-contiguous) view: the same counts as its contiguous copy
    counts = joint_histogram(gt.T.astype(dtype), gt_list, pred.T.astype(dtype), pred_list)
    gt_code = {0: 0} | {int(i): k + 1 for k, i in enumerate(gt_list)}
    pred_code = {0: 0} | {int(i): k + 1 for k, i in enumerate(pred_list)}
    expected = np.zeros((len(gt_list) + 1, len(pred_list) + 1), np.int64)
    for g, p in zip(gt.ravel().tolist(), pred.ravel().tolist(), strict=True):
        expected[gt_code[g], pred_code[p]] += 1
    np.testing.assert_array_equal(counts, expected)
    assert counts.sum() == gt.size
    assert joint_histogram(gt[:0], gt_list, pred[:0], pred_list).sum() == 0


def test_joint_histogram_names_ids_outside_the_lists() -> None:
    gt = np.array([[0, 3, 3, 70000]])
    with pytest.raises(ValueError, match=r"ground-truth map holds ids missing from its segment list: \[70000\]"):
        joint_histogram(gt, np.array([3]), np.zeros_like(gt), np.array([], np.int64))
    with pytest.raises(ValueError, match=r"prediction ids must be >= 0, got min -2"):
        joint_histogram(np.zeros_like(gt), np.array([], np.int64), np.array([[0, -2, 1, 1]]), np.array([1]))


# --- independent reference: panopticapi's per-image procedure, transcribed with dicts and loops -------------------


def reference_stats(gt_ids, gt_info, pred_ids, pred_info, stats) -> None:
    gt_segms = {s["id"]: dict(s) for s in gt_info}
    pred_segms = {s["id"]: dict(s) for s in pred_info}
    for segms, ids in ((gt_segms, gt_ids), (pred_segms, pred_ids)):
        for label, count in zip(*np.unique(ids, return_counts=True), strict=True):
            if label != 0:
                segms[int(label)]["area"] = int(count)
    pairs = np.unique(gt_ids.astype(np.uint64) * 2**32 + pred_ids.astype(np.uint64), return_counts=True)
    inter = {(int(k) >> 32, int(k) & 0xFFFFFFFF): int(c) for k, c in zip(*pairs, strict=True)}
    gt_matched, pred_matched = set(), set()
    for (g, p), n in inter.items():
        if g not in gt_segms or p not in pred_segms or gt_segms[g]["iscrowd"] == 1:
            continue
        if gt_segms[g]["category_id"] != pred_segms[p]["category_id"]:
            continue
        union = pred_segms[p]["area"] + gt_segms[g].get("area", 0) - n - inter.get((0, p), 0)
        iou = n / union
        if iou > 0.5:
            stats[gt_segms[g]["category_id"]]["tp"] += 1
            stats[gt_segms[g]["category_id"]]["iou"] += iou
            gt_matched.add(g)
            pred_matched.add(p)
    crowd = {}
    for g, info in gt_segms.items():
        if g in gt_matched:
            continue
        if info["iscrowd"] == 1:
            crowd[info["category_id"]] = g
            continue
        stats[info["category_id"]]["fn"] += 1
    for p, info in pred_segms.items():
        if p in pred_matched:
            continue
        on_ignored = inter.get((0, p), 0)
        if info["category_id"] in crowd:
            on_ignored += inter.get((crowd[info["category_id"]], p), 0)
        if on_ignored / info["area"] > 0.5:
            continue
        stats[info["category_id"]]["fp"] += 1


def reference_summary(stats, categories: list[Category]) -> dict:
    per_class = {}
    for c in categories:
        s = stats[c.id]
        if s["tp"] + s["fp"] + s["fn"] == 0:
            continue
        denominator = s["tp"] + 0.5 * s["fp"] + 0.5 * s["fn"]
        per_class[c.name] = {
            "pq": s["iou"] / denominator,
            "sq": s["iou"] / s["tp"] if s["tp"] else 0.0,
            "rq": s["tp"] / denominator,
        }
    things = {c.name for c in categories if c.is_thing}
    groups = {"All": set(per_class), "Things": set(per_class) & things, "Stuff": set(per_class) - things}
    out = {"per_class": per_class}
    for group, names in groups.items():
        out[group] = {key: sum(per_class[n][key] for n in names) / len(names) for key in ("pq", "sq", "rq")}
        out[group]["n"] = len(names)
    return out


def new_stats():
    return defaultdict(lambda: {"iou": 0.0, "tp": 0, "fp": 0, "fn": 0})


def assert_same_summary(got: dict, expected: dict) -> None:
    assert set(got["per_class"]) == set(expected["per_class"])
    for name, values in expected["per_class"].items():
        assert got["per_class"][name] == pytest.approx(values, rel=0, abs=1e-9), name
    for group in ("All", "Things", "Stuff"):
        assert got[group] == pytest.approx(expected[group], rel=0, abs=1e-9), group


def write_panoptic_png(path: Path, ids: np.ndarray) -> None:
    ids = ids.astype(np.uint32)
    bgr = np.stack([(ids >> 16) & 255, (ids >> 8) & 255, ids & 255], axis=-1).astype(np.uint8)
    assert cv2.imwrite(str(path), bgr)


def perturbed(ids: np.ndarray, info: list[dict], category_ids: list[int], rng: np.random.Generator):
    """A plausible, imperfect prediction: shifted map, painted boxes of random categories, void holes."""
    category_of = {s["id"]: s["category_id"] for s in info}
    present = sorted({s["category_id"] for s in info})
    pred = np.roll(ids, tuple(rng.integers(-6, 7, size=2)), axis=(0, 1))
    height, width = ids.shape
    for new_id in range(1, 13):
        h, w = rng.integers(8, height // 5), rng.integers(8, width // 5)
        y, x = rng.integers(0, height - h), rng.integers(0, width - w)
        pred[y : y + h, x : x + w] = 0 if new_id % 4 == 0 else new_id
        category_of[new_id] = int(rng.choice(present if rng.random() < 0.8 else category_ids))
    for s in rng.choice(info, size=3, replace=False):  # wrong category for some kept segments
        category_of[s["id"]] = int(rng.choice(present))
    segments = [{"id": int(i), "category_id": category_of[int(i)]} for i in np.unique(pred) if i != 0]
    return pred, segments


@pytest.fixture
def coco(coco_sample: Path) -> tuple[Path, Path]:
    return coco_sample / "panoptic_examples.json", coco_sample / "panoptic_examples"


def test_coco_sample_against_itself_is_perfect(coco) -> None:
    gt_json, gt_folder = coco
    result = pq_compute(gt_json, gt_json, gt_folder, gt_folder)
    # 8 categories occur (person with crowd regions, truck, horse, sports ball and 4 stuff); all matched with IoU 1
    assert result["All"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 8}
    assert result["Things"]["n"] + result["Stuff"]["n"] == 8
    assert all(v == {"pq": 1.0, "sq": 1.0, "rq": 1.0} for v in result["per_class"].values())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_perturbed_coco_prediction_matches_reference(coco, tmp_path: Path, seed: int) -> None:
    gt_json, gt_folder = coco
    gt = json.loads(gt_json.read_text())
    categories = [Category(c["id"], c["name"], bool(c["isthing"])) for c in gt["categories"]]
    rng = np.random.default_rng(seed)
    stats, annotations = new_stats(), []
    for ann in gt["annotations"]:
        gt_ids = read_panoptic_png(gt_folder / ann["file_name"])
        pred_ids, segments = perturbed(gt_ids, ann["segments_info"], [c.id for c in categories], rng)
        write_panoptic_png(tmp_path / ann["file_name"], pred_ids)
        annotations.append({"image_id": ann["image_id"], "file_name": ann["file_name"], "segments_info": segments})
        reference_stats(gt_ids, ann["segments_info"], pred_ids, segments, stats)
    pred_json = tmp_path / "pred.json"
    pred_json.write_text(json.dumps({"annotations": annotations[::-1]}))  # matched by image_id, not order

    result = pq_compute(gt_json, pred_json, gt_folder, tmp_path)
    expected = reference_summary(stats, categories)
    assert 0.05 < expected["All"]["pq"] < 0.95  # a real mix of matches, FP and FN
    assert_same_summary(result, expected)


def test_add_ids_matches_reference_on_random_cityscapes_maps() -> None:
    table = ClassTable.cityscapes()
    rng = np.random.default_rng(3)
    gt = np.full((96, 128), 7000)  # road
    gt[:40] = 23000  # sky
    gt[40:46] = 4000  # 'static': not an evaluation class -> void in the ground truth
    for instance, class_id in enumerate([26, 26, 26, 24, 24, 33], start=1):
        y, x, h, w = rng.integers(46, 80), rng.integers(0, 100), rng.integers(8, 20), rng.integers(8, 28)
        gt[y : y + h, x : x + w] = class_id * 1000 + instance
    gt[60:80, 100:124] = 26000  # a car crowd region
    pred = np.roll(gt, (2, -3), axis=(0, 1))
    pred[pred // 1000 == 4] = 0
    pred[62:78, 98:110] = 26009  # a car mostly on the crowd region
    pred[5:15, 5:25] = 24009  # a person in the sky
    accumulator = PQAccumulator.from_class_table(table)
    accumulator.add_ids(gt, pred, table)

    categories = [Category(c.id, c.name, c.is_thing) for c in table.classes]
    gt_void = np.where(np.isin(gt // 1000, table.ids), gt, 0)
    info = {
        "gt": [
            {"id": int(i), "category_id": int(i // 1000), "iscrowd": int(i // 1000 in (24, 26) and i % 1000 == 0)}
            for i in np.unique(gt_void)
            if i
        ],
        "pred": [{"id": int(i), "category_id": int(i // 1000)} for i in np.unique(pred) if i],
    }
    stats = new_stats()
    reference_stats(gt_void, info["gt"], pred, info["pred"], stats)
    expected = reference_summary(stats, categories)
    assert any(s["iscrowd"] for s in info["gt"]) and 0.05 < expected["All"]["pq"] < 0.95
    assert_same_summary(accumulator.summary(), expected)


def test_pq_compute_reports_missing_files_and_images(coco, tmp_path: Path) -> None:
    gt_json, gt_folder = coco
    with pytest.raises(FileNotFoundError, match="prediction JSON not found"):
        pq_compute(gt_json, tmp_path / "nope.json", gt_folder, gt_folder)
    partial = json.loads(gt_json.read_text())
    missing_id = partial["annotations"].pop()["image_id"]
    (tmp_path / "pred.json").write_text(json.dumps(partial))
    with pytest.raises(ValueError, match=f"no prediction for ground-truth image ids \\[{missing_id}\\]"):
        pq_compute(gt_json, tmp_path / "pred.json", gt_folder, gt_folder)
    with pytest.raises(FileNotFoundError, match="panoptic PNG not found"):
        pq_compute(gt_json, gt_json, gt_folder, tmp_path)


def test_cli_prints_json_and_table(coco, capsys) -> None:
    gt_json, gt_folder = coco
    args = ["pq", "--gt-json", str(gt_json), "--gt-folder", str(gt_folder)]
    assert main([*args, "--pred-json", str(gt_json), "--pred-folder", str(gt_folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["All"]["pq"] == 1.0
    assert main([*args, "--pred-json", str(gt_json), "--pred-folder", str(gt_folder)]) == 0
    table = capsys.readouterr().out
    assert "All" in table and "100.0" in table and "person" in table


def test_cli_bad_path_is_one_line_error(coco, tmp_path: Path, capsys) -> None:
    gt_json, gt_folder = coco
    code = main(
        [
            "pq",
            "--gt-json",
            str(gt_json),
            "--gt-folder",
            str(gt_folder),
            "--pred-json",
            str(tmp_path / "missing.json"),
            "--pred-folder",
            str(gt_folder),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("depth-panoptic pq: error:") and "missing.json" in err and "\n" not in err


def test_folder_of_pairs_in_parallel_with_integer_and_string_image_ids(tmp_path: Path) -> None:
    """Six synthetic pairs (crowd, void, wrong categories), integer and string ids mixed, predictions listed in
    another order: the same result with 1 and 3 decoding threads, equal to the reference."""
    rng = np.random.default_rng(11)
    categories = [{"id": c.id, "name": c.name, "isthing": int(c.is_thing)} for c in CATEGORIES]
    stats, gt_annotations, pred_annotations = new_stats(), [], []
    for k in range(6):
        gt_ids = np.kron(rng.integers(1, 9, (4, 5)), np.ones((48, 64), np.int64))  # ids 1..8
        gt_ids[:6] = 0
        info = [{"id": int(i), "category_id": int(1 + i % 4), "iscrowd": int(i == 5)} for i in np.unique(gt_ids) if i]
        pred_ids, segments = perturbed(gt_ids, [s for s in info if not s["iscrowd"]], [1, 2, 3, 4], rng)
        image_id = k if k % 2 else f"frame_{k:03d}"
        (tmp_path / "gt").mkdir(exist_ok=True), (tmp_path / "pred").mkdir(exist_ok=True)
        write_panoptic_png(tmp_path / "gt" / f"{k}.png", gt_ids)
        write_panoptic_png(tmp_path / "pred" / f"{k}.png", pred_ids)
        gt_annotations.append({"image_id": image_id, "file_name": f"{k}.png", "segments_info": info})
        pred_annotations.append({"image_id": image_id, "file_name": f"{k}.png", "segments_info": segments})
        reference_stats(gt_ids, info, pred_ids, segments, stats)
    (tmp_path / "gt.json").write_text(json.dumps({"categories": categories, "annotations": gt_annotations}))
    (tmp_path / "pred.json").write_text(json.dumps({"annotations": pred_annotations[::-1]}))
    args = (tmp_path / "gt.json", tmp_path / "pred.json", tmp_path / "gt", tmp_path / "pred")
    expected = reference_summary(stats, CATEGORIES)
    assert 0.05 < expected["All"]["pq"] < 0.95
    for workers in (1, 3):
        assert_same_summary(pq_compute(*args, workers=workers, progress=workers == 3), expected)


def test_pq_benchmark_agrees_with_hotcoco_when_installed() -> None:
    """The benchmark checks every evaluator's answer against the package's before it reports times."""
    from depth_panoptic_ros.bench.pq import run_pq_benchmark

    result = run_pq_benchmark(repeats=1, size=(240, 480))
    assert {"package (1 thread)", "package (threads: one per CPU)"} <= set(result["ms"])
    assert 0.05 < result["pq_all"]["pq"] < 0.95
