"""Instance depth statistics against a slow per-segment reference, hand-computed cases and real KITTI data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.panoptic.result import PanopticResult
from depth_panoptic_ros.products.instance_depth import instance_depth
from depth_panoptic_ros.products.segments import SegmentRuns, segment_inverse

CITYSCAPES = ClassTable.cityscapes()
ROAD, SKY, PERSON, CAR = 7, 23, 24, 26


def camera(width: int, height: int, fx: float = 100.0, fy: float = 120.0, cx: float = 3.5, cy: float = 2.25):
    return CameraModel.from_matrices(width, height, [[fx, 0, cx], [0, fy, cy], [0, 0, 1]])


def random_scene(seed: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Blocky segments with noise, void, invalid depth (0, NaN, inf) and one car that has no valid depth."""
    rng = np.random.default_rng(seed)
    choices = np.array([0, ROAD * 1000, SKY * 1000] + [CAR * 1000 + k for k in (1, 2, 3)] + [PERSON * 1000 + 1])
    blocks = rng.integers(0, len(choices), (shape[0] // 4 + 1, shape[1] // 4 + 1))
    ids = np.kron(choices[blocks], np.ones((4, 4), np.int64))[: shape[0], : shape[1]]
    noise = rng.random(shape) < 0.1
    ids[noise] = rng.choice(choices, noise.sum())
    ids[-3:, -5:] = CAR * 1000 + 9  # no valid depth below
    depth = rng.uniform(1.0, 80.0, shape).astype(np.float32)
    depth[rng.random(shape) < 0.3] = 0.0
    depth[rng.random(shape) < 0.02] = np.nan
    depth[rng.random(shape) < 0.02] = np.inf
    depth[ids == CAR * 1000 + 9] = 0.0
    return ids.astype(np.int32), depth


def reference(ids: np.ndarray, depth: np.ndarray, cam: CameraModel) -> dict[int, dict]:
    """One boolean mask per segment; back-projection written out per pixel coordinate."""
    out = {}
    for pid in np.unique(ids):
        if pid == 0:
            continue
        mask = ids == pid
        ys, xs = np.nonzero(mask)
        vs, us = np.nonzero(mask & np.isfinite(depth) & (depth > 0))
        z = depth[vs, us].astype(np.float64)
        x, y = (us - cam.cx) * z / cam.fx, (vs - cam.cy) * z / cam.fy
        stats = (z.mean(), np.median(z), z.min(), np.percentile(z, 10)) if z.size else (np.nan,) * 4
        out[int(pid)] = {
            "pixel_count": mask.sum(),
            "valid_count": z.size,
            "bbox": [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1],
            "depth": stats,
            "centroid": [x.mean(), y.mean(), z.mean()] if z.size else [np.nan] * 3,
        }
    return out


@pytest.mark.parametrize(("seed", "shape"), [(0, (37, 53)), (1, (64, 48)), (2, (5, 131))])
def test_matches_per_segment_reference(seed: int, shape: tuple[int, int]) -> None:
    ids, depth = random_scene(seed, shape)
    cam = camera(shape[1], shape[0])
    table = instance_depth(ids, depth, cam, CITYSCAPES)
    expected = reference(ids, depth, cam)

    assert table.panoptic_id.tolist() == sorted(expected)
    for row, pid in enumerate(table.panoptic_id.tolist()):
        ref = expected[pid]
        assert table.pixel_count[row] == ref["pixel_count"]
        assert table.valid_count[row] == ref["valid_count"]
        assert table.bbox[row].tolist() == ref["bbox"]
        got = [table.depth_mean[row], table.depth_median[row], table.depth_min[row], table.depth_p10[row]]
        np.testing.assert_allclose(got, ref["depth"], rtol=1e-5, equal_nan=True)
        np.testing.assert_allclose(table.centroid[row], ref["centroid"], rtol=1e-4, atol=1e-5, equal_nan=True)
    assert table.class_id.tolist() == [p // 1000 for p in expected]
    assert table.instance_id.tolist() == [p % 1000 for p in expected]
    assert table.is_thing.tolist() == [p // 1000 in (PERSON, CAR) for p in expected]
    assert [CITYSCAPES.names[i] for i in table.class_index] == [
        {ROAD: "road", SKY: "sky", PERSON: "person", CAR: "car"}[p // 1000] for p in expected
    ]


def test_segment_without_valid_depth_has_nan_statistics() -> None:
    ids, depth = random_scene(3, (20, 30))
    table = instance_depth(ids, depth, camera(30, 20), CITYSCAPES)
    row = table.panoptic_id.tolist().index(CAR * 1000 + 9)
    assert table.valid_count[row] == 0
    assert table.pixel_count[row] == 15
    assert table.bbox[row].tolist() == [25, 17, 30, 20]
    assert np.isnan([table.depth_mean[row], table.depth_median[row], table.depth_min[row], table.depth_p10[row]]).all()
    assert np.isnan(table.centroid[row]).all()


def test_hand_computed_centroid_and_statistics() -> None:
    # Car 26001 covers columns 1..3 of rows 1..2; only (u=2, v=1, z=4) and (u=3, v=2, z=8) have depth.
    ids = np.zeros((4, 5), np.int32)
    ids[1:3, 1:4] = 26001
    depth = np.zeros((4, 5), np.float32)
    depth[1, 2], depth[2, 3] = 4.0, 8.0
    depth[0, 0] = 5.0  # void pixel: ignored
    cam = camera(5, 4, fx=100.0, fy=200.0, cx=1.5, cy=0.5)
    table = instance_depth(ids, depth, cam, CITYSCAPES)

    assert len(table) == 1
    assert table.bbox[0].tolist() == [1, 1, 4, 3]
    assert (table.pixel_count[0], table.valid_count[0]) == (6, 2)
    # X = (u - cx) z / fx: (0.5 * 4 + 1.5 * 8) / 100 / 2; Y = (v - cy) z / fy: (0.5 * 4 + 1.5 * 8) / 200 / 2.
    np.testing.assert_allclose(table.centroid[0], [0.07, 0.035, 6.0], rtol=1e-6)
    np.testing.assert_allclose(table.depth_mean[0], 6.0)
    np.testing.assert_allclose(table.depth_median[0], 6.0)
    np.testing.assert_allclose(table.depth_min[0], 4.0)
    np.testing.assert_allclose(table.depth_p10[0], 4.4, rtol=1e-6)  # linear: 4 + 0.1 * (8 - 4)


def test_all_void_map_gives_an_empty_table() -> None:
    table = instance_depth(np.zeros((6, 7), np.int32), np.ones((6, 7), np.float32), camera(7, 6), CITYSCAPES)
    assert len(table) == 0
    assert table.bbox.shape == (0, 4)
    assert table.centroid.shape == (0, 3)
    assert table.to_records(CITYSCAPES) == []


def test_scores_come_from_the_panoptic_result() -> None:
    ids = np.array([[7000, 26001], [26002, 26002]], np.int32)
    depth = np.ones((2, 2), np.float32)
    result = PanopticResult(ids, np.array([7000, 26002]), np.array([0.5, 0.9], np.float32))
    scored = instance_depth(ids, depth, camera(2, 2), CITYSCAPES, result)
    np.testing.assert_allclose(scored.score, [0.5, np.nan, 0.9], equal_nan=True)
    assert instance_depth(ids, depth, camera(2, 2), CITYSCAPES).score.tolist() == [1.0, 1.0, 1.0]


def test_records_are_strict_json_with_nan_as_null() -> None:
    ids, depth = random_scene(4, (16, 24))
    table = instance_depth(ids, depth, camera(24, 16), CITYSCAPES)
    records = json.loads(json.dumps(table.to_records(CITYSCAPES), allow_nan=False))
    assert len(records) == len(table)
    empty = next(r for r in records if r["panoptic_id"] == CAR * 1000 + 9)
    assert empty["class_name"] == "car" and empty["is_thing"] is True and empty["valid_count"] == 0
    assert empty["depth_median"] is None and empty["centroid"] == [None, None, None]
    full = next(r for r in records if r["valid_count"] > 0)
    row = table.panoptic_id.tolist().index(full["panoptic_id"])
    assert full["bbox"] == table.bbox[row].tolist()
    assert full["depth_p10"] == pytest.approx(float(table.depth_p10[row]))


@pytest.mark.parametrize(
    ("ids", "depth", "cam", "message"),
    [
        (np.zeros((4, 5), np.int32), np.zeros((5, 4), np.float32), camera(5, 4), "depth: expected shape"),
        (np.zeros((4, 5), np.int32), np.zeros((4, 5), np.float32), camera(4, 5), "camera: expected a 5x4"),
        (np.zeros((4, 5), np.float32), np.zeros((4, 5), np.float32), camera(5, 4), "integer array"),
        (np.zeros((4, 5, 1), np.int32), np.zeros((4, 5), np.float32), camera(5, 4), r"\(H, W\) integer"),
        (np.full((4, 5), -1, np.int32), np.zeros((4, 5), np.float32), camera(5, 4), "ids >= 0"),
        (np.full((4, 5), 99001, np.int32), np.zeros((4, 5), np.float32), camera(5, 4), r"\[99001\].*not in"),
    ],
)
def test_bad_input_is_named(ids: np.ndarray, depth: np.ndarray, cam: CameraModel, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        instance_depth(ids, depth, cam, CITYSCAPES)


@pytest.mark.parametrize(
    ("offset", "dtype"), [(0, np.int64), (1 << 40, np.int64), (0, np.uint16), (0, ">i4"), (7, np.int8)]
)
@pytest.mark.parametrize("transpose", [False, True])
def test_segment_lookup_equals_numpy_unique(offset: int, dtype: str | type, transpose: bool) -> None:
    """Small and huge ids, segments in many short runs, a strided (transposed) view, the id types the run kernel
    is compiled for and others (converted): np.unique's answer."""
    rng = np.random.default_rng(5)
    ids = (rng.integers(0, 40, (30, 20)) * (1000 if dtype in (np.int64, ">i4") else 3) + offset).astype(dtype)
    ids[:2] = 0
    ids = ids.T if transpose else ids
    segments, inverse = segment_inverse(ids)
    expected_segments, expected_inverse = np.unique(ids, return_inverse=True)
    assert segments.tolist() == expected_segments.tolist()
    assert np.array_equal(inverse, expected_inverse.reshape(ids.shape))


@pytest.mark.parametrize("shape", [(0, 5), (5, 0)])
def test_empty_map_has_no_runs(shape: tuple[int, int]) -> None:
    runs = SegmentRuns.of(np.zeros(shape, np.int32))
    assert runs.start.size == runs.segments.size == runs.boundary_pixels.size == 0


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (23, 31)])
def test_segment_runs_are_maximal_row_runs_with_their_boxes(shape: tuple[int, int]) -> None:
    ids, _ = random_scene(6, shape)
    runs = SegmentRuns.of(ids)
    rows, end = np.divmod(runs.start, shape[1])[0], runs.start + runs.length
    assert runs.length.sum() == ids.size and np.array_equal(runs.start[1:], end[:-1])
    assert np.array_equal((end - 1) // shape[1], rows)  # no run crosses a row end
    same_row = rows[1:] == rows[:-1]
    assert (runs.segment[1:] != runs.segment[:-1])[same_row].all()  # maximal: neighbors in a row differ
    assert np.array_equal(runs.paint(runs.segments), ids)

    pixel_count, box = runs.extents()
    for k, pid in enumerate(runs.segments):
        ys, xs = np.nonzero(ids == pid)
        assert pixel_count[k] == ys.size
        assert box[k].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_order_statistics_of_tied_depths_in_segments_of_every_small_size() -> None:
    """One segment per valid count 1..14 (the quantile ranks coincide in every way) over integer depths with
    many ties, and one large segment: exactly the median, minimum and 10th percentile of numpy."""
    rng = np.random.default_rng(7)
    sizes = np.arange(1, 15)
    ids = np.repeat(CAR * 1000 + sizes, sizes)
    ids = np.concatenate([ids, np.full(5000, ROAD * 1000)])[None, :].astype(np.int32)
    depth = rng.integers(1, 6, ids.shape).astype(np.float32)
    table = instance_depth(ids, depth, camera(ids.shape[1], 1), CITYSCAPES)
    for row, pid in enumerate(table.panoptic_id):
        z = depth[ids == pid].astype(np.float64)
        assert table.depth_median[row] == np.float32(np.median(z))
        assert table.depth_min[row] == np.float32(z.min())
        np.testing.assert_allclose(table.depth_p10[row], np.percentile(z, 10), rtol=1e-7)


def _kitti_calib(path: Path) -> dict[str, np.ndarray]:
    return {
        k: np.array(v.split(), float)
        for k, v in (line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
    }


def test_kitti_objects_measured_by_lidar_lie_at_their_labeled_depth(kitti_object: Path) -> None:
    """Label boxes painted as instances (far first, so near ones occlude) over LiDAR projected into image_2:
    each object's median LiDAR depth lies within its half-extent (+ 1 m) of the labeled 3D center's depth."""
    calib = _kitti_calib(kitti_object / "calib" / "000001.txt")
    P2 = calib["P2"].reshape(3, 4)
    R0, Tr = np.eye(4), np.eye(4)
    R0[:3, :3], Tr[:3] = calib["R0_rect"].reshape(3, 3), calib["Tr_velo_to_cam"].reshape(3, 4)
    points = np.fromfile(kitti_object / "velodyne" / "000001.bin", np.float32).reshape(-1, 4)
    image = (P2 @ R0 @ Tr @ np.c_[points[:, :3], np.ones(len(points))].T).T
    h, w = 375, 1242
    ahead = image[:, 2] > 1.0
    u, v, z = np.rint(image[ahead, 0] / image[ahead, 2]), np.rint(image[ahead, 1] / image[ahead, 2]), image[ahead, 2]
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    far_first = np.argsort(-z[inside])
    depth = np.zeros((h, w), np.float32)
    depth[v[inside][far_first].astype(int), u[inside][far_first].astype(int)] = z[inside][far_first]

    class_of = {"Car": CAR, "Van": CAR, "Truck": 27, "Cyclist": 25, "Pedestrian": PERSON}
    labels = [line.split() for line in (kitti_object / "label_2" / "000001.txt").read_text().splitlines()]
    labels = sorted((lb for lb in labels if lb[0] in class_of), key=lambda lb: -float(lb[13]))
    ids = np.full((h, w), ROAD * 1000, np.int32)
    for k, label in enumerate(labels, start=1):
        x0, y0, x1, y1 = (int(round(float(c))) for c in label[4:8])
        ids[y0 : y1 + 1, x0 : x1 + 1] = class_of[label[0]] * 1000 + k
    table = instance_depth(ids, depth, CameraModel.from_matrices(w, h, P2[:, :3], P2), CITYSCAPES)

    assert len(labels) >= 3
    for k, label in enumerate(labels, start=1):
        row = table.panoptic_id.tolist().index(class_of[label[0]] * 1000 + k)
        width, length, z_center = float(label[9]), float(label[10]), float(label[13])
        assert table.valid_count[row] >= 10
        assert abs(table.depth_median[row] - z_center) < max(width, length) / 2 + 1.0, label


@pytest.mark.parametrize(("seed", "shape"), [(3, (41, 67)), (4, (1, 200)), (5, (200, 1)), (6, (1, 1)), (7, (2, 3))])
def test_segment_outlines_from_the_runs_equal_the_pixel_comparison(seed: int, shape: tuple[int, int]) -> None:
    """A pixel is on an outline when its right or lower neighbor differs: compared pixel by pixel here."""
    ids, _ = random_scene(seed, shape)
    edge = np.zeros(shape, bool)
    edge[:, :-1] |= ids[:, 1:] != ids[:, :-1]
    edge[:-1] |= ids[1:] != ids[:-1]
    assert np.array_equal(SegmentRuns.of(ids).boundary_pixels, np.flatnonzero(edge))


def test_means_and_centroids_are_float64_sums_in_raster_order_and_runs_can_be_shared() -> None:
    """Bit for bit the per-pixel float64 accumulation (np.bincount over the segment of each valid pixel), and
    the same table from the map's runs as from the map."""
    ids, depth = random_scene(8, (57, 83))
    cam = camera(83, 57, cx=40.0, cy=30.0)
    table = instance_depth(ids, depth, cam, CITYSCAPES)
    segments, inverse = np.unique(ids, return_inverse=True)
    inverse = inverse.reshape(ids.shape)
    valid = np.isfinite(depth) & (depth > 0) & (ids != 0)
    v, u = np.nonzero(valid)
    z = depth[valid]
    ray_x = ((u - np.float32(40.0)) / np.float32(100.0)).astype(np.float32)
    ray_y = ((v - np.float32(30.0)) / np.float32(120.0)).astype(np.float32)
    count = np.bincount(inverse[valid], minlength=len(segments))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = [np.bincount(inverse[valid], c, minlength=len(segments)) / count for c in (ray_x * z, ray_y * z, z)]
    keep = segments != 0
    assert np.array_equal(table.depth_mean, means[2][keep].astype(np.float32), equal_nan=True)
    expected = np.stack(means, axis=1)[keep].astype(np.float32)
    np.testing.assert_allclose(table.centroid, expected, rtol=1e-6, atol=1e-5, equal_nan=True)  # rays: own rounding
    shared = instance_depth(SegmentRuns.of(ids), depth, cam, CITYSCAPES)
    for name in ("pixel_count", "valid_count", "bbox", "depth_mean", "depth_median", "depth_p10", "centroid"):
        assert np.array_equal(getattr(shared, name), getattr(table, name), equal_nan=True), name


def _transcribed_statistics(ids: np.ndarray, depth: np.ndarray, cam: CameraModel) -> dict[str, np.ndarray]:
    """The kernel's definition written out with a sort: per non-void segment (sorted ids), its valid depths in
    raster order; sums one float64 value after the other; numpy's 'linear' quantile at first + q (count - 1),
    first being the segment's offset among all segments' valid depths laid out one segment after the other."""
    inv = np.linalg.inv(cam.intrinsics).astype(np.float32)
    ray_x = inv[0, 0] * np.arange(ids.shape[1], dtype=np.float32) + inv[0, 2]
    ray_y = inv[1, 1] * np.arange(ids.shape[0], dtype=np.float32) + inv[1, 2]
    out: dict[str, list] = {"count": [], "sums": [], "median": [], "min": [], "p10": []}
    first = 0
    for pid in np.unique(ids[ids != 0]):
        v, u = np.nonzero((ids == pid) & (depth > 0) & (depth < np.inf))
        z = depth[v, u]
        sums = [0.0, 0.0, 0.0]
        for x, y, d in zip(ray_x[u] * z, ray_y[v] * z, z, strict=True):
            sums = [sums[0] + float(x), sums[1] + float(y), sums[2] + float(d)]
        out["count"].append(len(z))
        out["sums"].append(sums)
        ordered = np.sort(z)
        for name, q in (("median", 0.5), ("min", 0.0), ("p10", 0.1)):
            if len(z) == 0:
                out[name].append(np.nan)
                continue
            position = first + q * (len(z) - 1)
            below = int(np.floor(position))
            lo, hi = float(ordered[below - first]), float(ordered[min(below + 1, first + len(z) - 1) - first])
            out[name].append(np.float32(lo + (position - below) * (hi - lo)))
        first += len(z)
    return {key: np.array(value) for key, value in out.items()}


def _interleaved_segments(rng: np.random.Generator) -> np.ndarray:
    """Car segments in 7-pixel runs that recur far apart, a road strip and scattered void."""
    shape = (41, 97)
    ids = (CAR * 1000 + rng.integers(1, 6, (shape[0], shape[1] // 7 + 1))).repeat(7, axis=1)[:, : shape[1]]
    ids[:, :30] = ROAD * 1000
    ids[rng.random(shape) < 0.05] = 0
    return ids.astype(np.int32)


def _large_road(rng: np.random.Generator) -> np.ndarray:
    """A road of more than 2^16 valid depths (the kernel then selects through a histogram of the top 16 bits) and a
    car of fewer than _HISTOGRAM_MIN (selected in place)."""
    ids = np.full((320, 360), ROAD * 1000, np.int32)
    ids[100:160, 40:200] = CAR * 1000 + 1
    ids[rng.random(ids.shape) < 0.05] = 0
    return ids


@pytest.mark.parametrize("segments", [_interleaved_segments, _large_road])
@pytest.mark.parametrize("values", ["random", "equal", "ascending", "descending", "few"])
def test_compiled_statistics_equal_a_sorting_transcription_bit_for_bit(segments, values: str) -> None:
    """Interleaved segments (runs of one segment far apart) or one large one, void, invalid depth and the orders
    that make a selection go wrong (all equal, sorted either way, few distinct values): counts, float64 sums (the
    centroid times the count) and the three quantiles exactly as the transcription."""
    rng = np.random.default_rng(11)
    ids = segments(rng)
    shape = ids.shape
    depth = {
        "random": rng.uniform(0.5, 90.0, shape),
        "equal": np.full(shape, 7.25),
        "ascending": np.linspace(1.0, 60.0, ids.size).reshape(shape),
        "descending": np.linspace(60.0, 1.0, ids.size).reshape(shape),
        "few": rng.integers(1, 4, shape) * 2.5,
    }[values].astype(np.float32)
    for bad, share in ((np.nan, 0.03), (np.inf, 0.03), (-2.0, 0.03), (0.0, 0.1)):
        depth[rng.random(shape) < share] = bad
    cam = camera(shape[1], shape[0], cx=shape[1] / 2 - 0.2, cy=shape[0] / 2 + 0.1)
    table = instance_depth(ids, depth, cam, CITYSCAPES)
    expected = _transcribed_statistics(ids, depth, cam)
    if segments is _large_road:
        from depth_panoptic_ros.products.instance_depth_compiled import _HISTOGRAM_MIN

        assert table.valid_count[table.panoptic_id == ROAD * 1000][0] >= max(1 << 16, _HISTOGRAM_MIN)
        assert table.valid_count[table.panoptic_id == CAR * 1000 + 1][0] < _HISTOGRAM_MIN
    assert np.array_equal(table.valid_count, expected["count"])
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = (expected["sums"] / expected["count"][:, None]).astype(np.float32)
    assert np.array_equal(table.centroid, centroid, equal_nan=True)
    assert np.array_equal(table.depth_mean, centroid[:, 2], equal_nan=True)
    for name, column in (("median", table.depth_median), ("min", table.depth_min), ("p10", table.depth_p10)):
        assert np.array_equal(column, expected[name].astype(np.float32), equal_nan=True), name


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scene", ["interleaved", "large_road", "random", "skewed", "all_void"])
def test_statistics_on_the_model_device_equal_the_compiled_kernel(scene: str, device: str) -> None:
    """The statistics of a GPU model's ids computed on its device (here also on the CPU, which runs the same
    torch code): counts, boxes and the three quantiles exactly the kernel's, centroids to float32 rounding (the
    device adds in another order)."""
    rng = np.random.default_rng(5)
    if scene == "interleaved":
        ids = _interleaved_segments(rng)
    elif scene in ("large_road", "skewed"):
        ids = _large_road(rng)
    else:
        ids, _ = random_scene(3, (37, 53))
    if scene == "all_void":
        ids[:] = 0
    depth = rng.uniform(0.5, 90.0, ids.shape).astype(np.float32)
    depth[rng.random(ids.shape) < 0.02] = np.nan
    depth[rng.random(ids.shape) < 0.2] = 0.0
    depth[:, :3] = np.round(depth[:, :3])  # ties
    h, w = ids.shape
    cam = camera(w, h, cx=w / 2 - 0.2, cy=h / 2 + 0.1)
    if scene == "skewed":
        cam = CameraModel.from_matrices(w, h, [[100.0, 3.0, w / 2], [0, 120.0, h / 2], [0, 0, 1]])
    host = instance_depth(ids, depth, cam, CITYSCAPES)
    on_device = instance_depth(ids, depth, cam, CITYSCAPES, device_ids=torch.from_numpy(ids).to(device))
    for name in ("panoptic_id", "pixel_count", "valid_count", "bbox", "depth_median", "depth_min", "depth_p10"):
        assert np.array_equal(getattr(on_device, name), getattr(host, name), equal_nan=True), name
    np.testing.assert_allclose(on_device.centroid, host.centroid, rtol=2.5e-7, equal_nan=True)
    np.testing.assert_allclose(on_device.depth_mean, host.depth_mean, rtol=2.5e-7, equal_nan=True)
    if scene != "all_void":
        assert (host.valid_count > 0).sum() >= 2


def test_device_ids_of_another_size_are_refused() -> None:
    ids, depth = random_scene(0, (20, 30))
    with pytest.raises(ValueError, match="device_ids: expected shape"):
        instance_depth(ids, depth, camera(30, 20), CITYSCAPES, device_ids=torch.zeros((20, 31), dtype=torch.int32))
