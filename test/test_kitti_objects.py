"""KITTI object evaluation: label reader, devkit matching rules, near-face depth, hand-built segments, real frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.data.kitti_objects import ObjectLabels, object_frame_ids, read_object_labels
from depth_panoptic_ros.evaluation.kitti_objects import (
    COUNTED,
    DIFFICULTIES,
    FALSE_POSITIVE,
    GROUPS,
    IGNORED,
    IGNORED_DETECTION,
    IN_DONT_CARE,
    OTHER,
    TRUE_POSITIVE,
    Detections,
    box_cover,
    box_iou,
    evaluate_frame,
    match_group,
    near_face_depth,
    summarize,
)
from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.products.instance_depth import instance_depth

CITYSCAPES = ClassTable.cityscapes()
CAR, PERSON = 26, 24
VEHICLES, PERSONS = GROUPS
LEVEL = {d.name: d for d in DIFFICULTIES}
K = np.array([[700.0, 0, 620], [0, 700.0, 187], [0, 0, 1]])


def labels(*rows: tuple) -> ObjectLabels:
    """rows: (type, truncation, occlusion, box, dims h w l, location, rotation_y)."""
    values = [[t, o, 0.0, *box, *dims, *loc, ry] for _, t, o, box, dims, loc, ry in rows]
    return ObjectLabels.from_rows([r[0] for r in rows], np.array(values, np.float64))


def detections(boxes: list, depths: list | None = None, names: list | None = None) -> Detections:
    n = len(boxes)
    return Detections(
        box=np.array(boxes, np.float64).reshape(-1, 4),
        depth=np.array(depths if depths is not None else [np.nan] * n, np.float64),
        class_name=np.array(names or ["car"] * n, dtype=str),
        panoptic_id=np.arange(n),
    )


FAR = ((1.5, 1.6, 4.0), (0.0, 1.5, 30.0), 0.0)  # dims, location, rotation_y of objects whose 3D box is not tested


def test_reads_label_file_columns(tmp_path: Path) -> None:
    path = tmp_path / "000001.txt"
    path.write_text(
        "Truck 0.00 0 -1.57 599.41 156.40 629.75 189.25 2.85 2.63 12.34 0.47 1.49 69.44 -1.56\n"
        "\n"
        "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10 0.9\n"
    )
    got = read_object_labels(path)
    assert got.type.tolist() == ["Truck", "DontCare"]
    np.testing.assert_allclose(got.box[0], [599.41, 156.40, 629.75, 189.25])
    np.testing.assert_allclose(got.dimensions[0], [2.85, 2.63, 12.34])
    np.testing.assert_allclose(got.location[0], [0.47, 1.49, 69.44])
    assert got.occlusion.tolist() == [0, -1] and got.rotation_y[0] == -1.56 and got.truncation[1] == -1


@pytest.mark.parametrize(
    ("line", "message"),
    [("Car 0 0 0 1 2 3 4", "15 fields"), ("Car 0 0 0 1 2 3 x 1 1 1 1 1 1 0", ":1:")],
)
def test_malformed_label_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=message):
        read_object_labels(path)


def test_frame_ids_need_all_four_parts(tmp_path: Path) -> None:
    for part, suffix in (("image_2", ".png"), ("velodyne", ".bin"), ("calib", ".txt"), ("label_2", ".txt")):
        (tmp_path / part).mkdir()
        for stem in ("000001", "000002") if part != "velodyne" else ("000002",):
            (tmp_path / part / f"{stem}{suffix}").write_text("")
    assert object_frame_ids(tmp_path) == ["000002"]
    (tmp_path / "velodyne" / "000002.bin").unlink()
    with pytest.raises(ValueError, match="no frame has all"):
        object_frame_ids(tmp_path)
    with pytest.raises(ValueError, match="missing image_2"):
        object_frame_ids(tmp_path / "nowhere")


def test_box_iou_and_cover_by_hand() -> None:
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 20, 20]])
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0.0, 100 / 400]])
    np.testing.assert_allclose(box_cover(a, b), [[0.5, 0.0, 1.0]])
    assert box_iou(a, np.zeros((0, 4))).shape == (1, 0)


@pytest.mark.parametrize(
    ("rotation_y", "location", "offset", "expected"),
    [
        (0.0, (0.0, 1.5, 20.0), 0.0, 19.2),  # length across the view: the side at z - w/2 faces the camera
        (np.pi / 2, (0.0, 1.5, 20.0), 0.0, 18.0),  # length along the view: the rear at z - l/2
        (np.pi / 2, (0.0, 1.5, 20.0), 0.25, 18.25),  # P's fourth column moves depth (KITTI P2: ~6 mm)
        # Far to the left and near: the side facing the camera is nearer than the rear face.
        (np.pi / 2, (-10.0, 1.5, 4.0), 0.0, 4.0),
    ],
)
def test_near_face_depth_by_hand(rotation_y: float, location: tuple, offset: float, expected: float) -> None:
    box = labels(("Car", 0.0, 0, (0, 0, 10, 10), (1.5, 1.6, 4.0), location, rotation_y))
    P = np.hstack([K, [[0.0], [0.0], [offset]]])
    np.testing.assert_allclose(near_face_depth(box, P), [expected], atol=1e-9)


def scene() -> tuple[ObjectLabels, Detections]:
    """Car found, Van found, Pedestrian (other group), Car occluded 2 (moderate: ignored), DontCare region."""
    gt = labels(
        ("Car", 0.0, 0, (100, 100, 200, 180), *FAR),
        ("Van", 0.0, 0, (300, 100, 360, 140), *FAR),
        ("Pedestrian", 0.0, 0, (400, 100, 430, 180), *FAR),
        ("Car", 0.0, 2, (500, 100, 600, 180), *FAR),
        ("DontCare", -1.0, -1, (700, 100, 800, 200), *FAR),
    )
    det = detections(
        [
            (105, 100, 200, 180),  # 0: car, IoU 0.95
            (300, 100, 360, 140),  # 1: van, IoU 1
            (500, 100, 600, 180),  # 2: the occluded car
            (710, 110, 790, 190),  # 3: inside DontCare
            (900, 100, 950, 180),  # 4: nothing there
            (100, 100, 200, 110),  # 5: 10 px high: ignored at every level
        ]
    )
    return gt, det


@pytest.mark.parametrize(
    ("level", "label_state", "detection_state", "pairs"),
    [
        (
            "easy",  # the Van is 40 px high: not > 40
            [COUNTED, IGNORED, OTHER, IGNORED, OTHER],
            [TRUE_POSITIVE, IGNORED_DETECTION, IGNORED_DETECTION, IN_DONT_CARE, FALSE_POSITIVE, IGNORED_DETECTION],
            [[0, 0]],
        ),
        (
            "moderate",
            [COUNTED, COUNTED, OTHER, IGNORED, OTHER],
            [TRUE_POSITIVE, TRUE_POSITIVE, IGNORED_DETECTION, IN_DONT_CARE, FALSE_POSITIVE, IGNORED_DETECTION],
            [[0, 0], [1, 1]],
        ),
        (
            "hard",
            [COUNTED, COUNTED, OTHER, COUNTED, OTHER],
            [TRUE_POSITIVE, TRUE_POSITIVE, TRUE_POSITIVE, IN_DONT_CARE, FALSE_POSITIVE, IGNORED_DETECTION],
            [[0, 0], [1, 1], [3, 2]],
        ),
    ],
)
def test_devkit_rules_on_a_hand_built_frame(level: str, label_state: list, detection_state: list, pairs: list) -> None:
    gt, det = scene()
    match = match_group(gt, det, VEHICLES, LEVEL[level])
    assert match.label_state.tolist() == label_state
    assert match.detection_state.tolist() == detection_state
    assert match.pairs.tolist() == pairs
    assert (match.tp, match.fp, match.fn) == (len(pairs), 1, 0)


def test_missed_objects_and_one_detection_for_two_labels() -> None:
    gt = labels(("Car", 0.0, 0, (0, 0, 100, 100), *FAR), ("Car", 0.0, 0, (10, 0, 110, 100), *FAR))
    det = detections([(5, 0, 105, 100)])  # IoU 0.905 with both: the first label in file order takes it
    match = match_group(gt, det, VEHICLES, LEVEL["moderate"])
    assert match.pairs.tolist() == [[0, 0]] and (match.tp, match.fp, match.fn) == (1, 0, 1)
    assert match.label_matched.tolist() == [True, False]


def test_highest_iou_wins_and_small_detections_only_as_a_last_resort() -> None:
    gt = labels(("Car", 0.0, 0, (0, 0, 100, 30), *FAR))  # 30 px: counted at moderate
    det = detections([(0, 0, 100, 20), (0, 0, 100, 50), (0, 0, 100, 40)])  # small (IoU .67), .6, .75
    match = match_group(gt, det, VEHICLES, LEVEL["moderate"])
    assert match.pairs.tolist() == [[0, 2]]
    assert match.detection_state.tolist() == [IGNORED_DETECTION, FALSE_POSITIVE, TRUE_POSITIVE]
    only_small = match_group(gt, detections([(0, 0, 100, 20)]), VEHICLES, LEVEL["moderate"])
    assert (only_small.tp, only_small.fp, only_small.fn) == (0, 0, 0)  # assigned, ignored: neither found nor missed


def test_tram_is_ignored_for_vehicles_and_misc_is_not() -> None:
    gt = labels(("Tram", 0.0, 0, (0, 0, 100, 100), *FAR), ("Misc", 0.0, 0, (200, 0, 300, 100), *FAR))
    match = match_group(gt, detections([(0, 0, 100, 100), (200, 0, 300, 100)]), VEHICLES, LEVEL["moderate"])
    assert match.detection_state.tolist() == [IGNORED_DETECTION, FALSE_POSITIVE]


def test_hand_built_segments_give_known_matches_and_depth_errors() -> None:
    """A panoptic map with a car 5 % behind its label's near face, a person 10 % in front, and a stray car."""
    h, w = 375, 1242
    ids = np.full((h, w), 7000, np.int32)  # road
    depth = np.full((h, w), 30.0, np.float32)
    ids[100:180, 100:200], depth[100:180, 100:200] = CAR * 1000 + 1, 19.2 * 1.05
    ids[120:200, 400:430], depth[120:200, 400:430] = PERSON * 1000 + 1, 12.0 * 0.9
    ids[300:339, 900:1000] = CAR * 1000 + 2  # 39 px: ignored at easy only
    camera = CameraModel.from_matrices(w, h, K)
    table = instance_depth(ids, depth, camera, CITYSCAPES)
    det = Detections.from_instances(table, CITYSCAPES)
    assert sorted(det.class_name.tolist()) == ["car", "car", "person"]
    gt = labels(
        ("Car", 0.0, 0, (100, 100, 200, 180), (1.5, 1.6, 4.0), (0.0, 1.5, 20.0), 0.0),  # near face 19.2 m
        ("Pedestrian", 0.0, 0, (400, 120, 430, 200), (1.7, 0.6, 0.8), (0.0, 1.6, 12.4), np.pi / 2),  # 12.0 m
    )
    result = evaluate_frame("f", gt, det, camera.P)
    cars, people = result.groups[("vehicles", "moderate")], result.groups[("persons", "moderate")]
    assert (cars.match.tp, cars.match.fp, cars.match.fn) == (1, 1, 0)
    assert (people.match.tp, people.match.fp, people.match.fn) == (1, 0, 0)
    np.testing.assert_allclose(cars.true_depth, [19.2])
    np.testing.assert_allclose(cars.predicted_depth, [19.2 * 1.05], rtol=1e-6)
    totals = summarize([result, result]).totals
    assert totals[("vehicles", "moderate")]["recall"] == 1.0 and totals[("vehicles", "moderate")]["precision"] == 0.5
    np.testing.assert_allclose(totals[("vehicles", "moderate")]["depth_median_rel"], 0.05, rtol=1e-5)
    np.testing.assert_allclose(totals[("persons", "moderate")]["depth_median_rel"], -0.1, rtol=1e-5)
    np.testing.assert_allclose(totals[("persons", "moderate")]["depth_median_abs_m"], 1.2, rtol=1e-5)
    assert totals[("persons", "easy")]["objects"] == 2 and totals[("vehicles", "easy")]["fp"] == 0  # stray: 39 px
    json.dumps(result.row(), allow_nan=False)


def test_overlay_colors_found_missed_and_false_boxes() -> None:
    from depth_panoptic_ros.evaluation.kitti_overlay import FALSE, FOUND, MISSED, draw_object_evaluation

    gt = labels(("Car", 0.0, 0, (100, 100, 200, 180), *FAR), ("Car", 0.0, 0, (300, 100, 400, 180), *FAR))
    det = detections([(95, 95, 200, 180), (600, 100, 700, 180)], depths=[20.0, 8.0])
    result = evaluate_frame("f", gt, det, np.hstack([K, np.zeros((3, 1))]))
    rgb = np.zeros((375, 1242, 3), np.uint8)
    image = draw_object_evaluation(rgb, np.full((375, 1242), 7000, np.int32), CITYSCAPES, gt, result, K @ np.eye(3, 4))
    assert tuple(image[140, 100]) == FOUND and tuple(image[140, 300]) == MISSED and tuple(image[140, 700]) == FALSE


def test_cli_on_real_frames(kitti_object: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Frame 000001: a Truck 33 px high (moderate, not easy), a Car 22 px high and a Cyclist of occlusion 3
    (ignored), four DontCare regions; frame 000000: one Pedestrian, 165 px high, fully visible."""
    from depth_panoptic_ros.cli import main

    code = main(
        ["evaluate-kitti-objects", str(kitti_object), "--frames", "000000", "000001"]
        + ["--overlays", str(tmp_path), "--json"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 2 and [row["frame"] for row in report["per_frame"]] == ["000000", "000001"]
    assert [report["vehicles"][level]["objects"] for level in ("easy", "moderate", "hard")] == [0, 1, 1]
    assert [report["persons"][level]["objects"] for level in ("easy", "moderate", "hard")] == [1, 1, 1]
    rows = report["per_frame"]
    assert sum(row["vehicles"]["moderate"]["fp"] for row in rows) == report["vehicles"]["moderate"]["fp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000000.png", "000001.png"]
    assert main(["evaluate-kitti-objects", str(kitti_object), "--frames", "999999"]) == 2
