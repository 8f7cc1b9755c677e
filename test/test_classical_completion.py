"""Classical depth completion (package default) and the IP-Basic baseline: synthetic scenes with known
answers (through both implementations of the passes: compiled and OpenCV), the two implementations compared
bit for bit on random scenes and every real frame, hand-checked IP-Basic steps, and the real-KITTI comparison
on held-out LiDAR points."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from depth_panoptic_ros.bench.completion import (
    BASELINE,
    format_table,
    holdout_split,
    load_protocols,
    run_completion_benchmark,
)
from depth_panoptic_ros.depth import classical, classical_opencv
from depth_panoptic_ros.depth.classical import CompletionConfig, complete_depth
from depth_panoptic_ros.depth.ip_basic import extend_top_upwards, fill_empty, invert_depth, ip_basic_complete
from depth_panoptic_ros.evaluation.depth_metrics import depth_errors

FOCAL, CX, CY, CAMERA_HEIGHT = 500.0, 100.0, 20.0, 1.5


def compiled_steps():  # noqa: ANN201 (the kernels' module; the test is skipped without numba)
    pytest.importorskip("numba")
    from depth_panoptic_ros.depth import classical_compiled

    return classical_compiled


def use_steps(steps: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """complete_depth with the steps of ``steps`` (classical_compiled or classical_opencv)."""
    monkeypatch.setattr(classical, "find_measurements", steps.find_measurements)
    monkeypatch.setattr(classical, "fill_passes", steps.fill_passes)
    monkeypatch.setattr(classical, "smooth_far_from_measurements", steps.smooth_far_from_measurements)


@pytest.fixture(params=["compiled", "opencv"])
def passes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with each implementation of the passes and the median (complete_depth uses the one chosen at
    import)."""
    use_steps(compiled_steps() if request.param == "compiled" else classical_opencv, monkeypatch)
    return request.param


both_passes = pytest.mark.usefixtures("passes")


def scan_mask(shape: tuple[int, int], first_row: int, row_step: int = 5, col_step: int = 2) -> np.ndarray:
    """LiDAR-like samples: every col_step-th column of every row_step-th row from first_row on."""
    rows, cols = np.indices(shape)
    return (rows >= first_row) & ((rows - first_row) % row_step == 0) & (cols % col_step == 0)


def tilted_ground(shape: tuple[int, int]) -> np.ndarray:
    """Depth of the plane 0.1 x + y + 0.05 z = 1.5 (camera frame): 1/z = (0.1 x/z + y/z + 0.05) / 1.5; 0 where
    the plane is not in front of the camera (up to 150 m)."""
    v, u = np.indices(shape, dtype=np.float64)
    inverse = (0.1 * (u - CX) / FOCAL + (v - CY) / FOCAL + 0.05) / CAMERA_HEIGHT
    return np.divide(1, inverse, out=np.zeros(shape), where=inverse > 1 / 150).astype(np.float32)


@both_passes
def test_plane_from_scan_lines_is_recovered_exactly() -> None:
    shape = (120, 200)
    truth = tilted_ground(shape)
    assert 5 < truth[30:].min() and truth[30:].max() < 31  # a ground-like range of depths
    mask = scan_mask(shape, first_row=30)
    sparse = np.where(mask, truth, 0).astype(np.float32)
    rows = np.flatnonzero(mask.any(axis=1))
    inside = (slice(rows[0] + 1, rows[-1] - 1), slice(0, 199))  # between the first / last line and sample
    for rgb in (None, np.full((*shape, 3), 128, np.uint8)):
        dense = complete_depth(sparse, rgb)
        np.testing.assert_allclose(dense[inside], truth[inside], rtol=2e-6)


@both_passes
def test_measured_points_are_returned_unchanged() -> None:
    rng = np.random.default_rng(3)
    sparse = np.where(rng.random((80, 120)) < 0.05, rng.uniform(0.5, 90, (80, 120)), 0).astype(np.float32)
    dense = complete_depth(sparse, rng.integers(0, 256, (80, 120, 3), dtype=np.uint8))
    measured = sparse > 0
    assert np.array_equal(dense[measured], sparse[measured])
    assert dense.dtype == np.float32 and dense.shape == sparse.shape
    assert (dense > 0).mean() > 0.5  # it did fill


def box_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 5 m box (columns 101-149, rows 10-49) in front of a 20 m wall, sampled every 4th column / 5th row."""
    truth = np.full((60, 200), 20.0, np.float32)
    truth[10:50, 101:150] = 5.0
    rgb = np.full((60, 200, 3), 90, np.uint8)
    rgb[10:50, 101:150] = (200, 30, 30)
    sparse = np.where(scan_mask(truth.shape, first_row=0, col_step=4), truth, 0).astype(np.float32)
    return truth, rgb, sparse


@both_passes
def test_box_edges_stay_sharp_and_follow_the_image() -> None:
    truth, rgb, sparse = box_scene()
    with_image, without_image = complete_depth(sparse, rgb), complete_depth(sparse)
    for dense in (with_image, without_image):  # one side's depth at every discontinuity, never a blend
        region = dense[:55, :197]
        assert np.all(np.isclose(region, 5.0, rtol=1e-6) | np.isclose(region, 20.0, rtol=1e-6))
    box_rows = slice(10, 46)  # between the first and last scan line on the box: vertical edges only
    np.testing.assert_allclose(with_image[box_rows, :197], truth[box_rows, :197], rtol=1e-6)
    # Without the image the boundary goes half-way between the samples at 100 (wall) and 104 (box), and
    # between 148 (box) and 152 (wall): 101, 102 and 150 land on the wrong side.
    assert np.allclose(without_image[box_rows, [101, 102]], 20.0) and np.allclose(without_image[box_rows, 150], 5.0)


@both_passes
def test_sky_above_the_top_line_stays_empty() -> None:
    shape = (160, 200)
    truth = tilted_ground(shape)
    mask = scan_mask(shape, first_row=50, col_step=1)
    mask[:100, 100:] = False  # the right half's top line is row 100, the left half's row 50
    sparse = np.where(mask, truth, 0).astype(np.float32)
    for extend in (16, 40):  # 40: farther up than across_gap_px reaches
        config = CompletionConfig(extend_px=extend, across_gap_px=32, median_px=0)  # the median mixes in rows below
        right = slice(100 + config.along_gap_px + 1, 200)  # beyond the left half's lines, carried along their rows
        dense = complete_depth(sparse, config=config)
        assert not dense[: 100 - extend, right].any() and not dense[: 50 - extend].any()
        extended = dense[100 - extend : 100, right]
        np.testing.assert_allclose(extended, np.broadcast_to(truth[100, right], extended.shape), rtol=1e-6)
    assert not complete_depth(sparse, config=CompletionConfig(extend_px=0))[:100, right].any()


@both_passes
def test_empty_and_invalid_input_give_empty_output() -> None:
    for sparse in (np.zeros((30, 40), np.float32), np.full((30, 40), np.nan), np.full((30, 40), np.inf)):
        dense = complete_depth(sparse)
        assert dense.dtype == np.float32 and dense.shape == (30, 40) and not dense.any()
    sparse = np.zeros((30, 40))  # float64 is accepted; NaN / inf / negative samples count as no return
    sparse[10, 10:20:2], sparse[10, 11], sparse[10, 13], sparse[10, 15] = 8.0, np.nan, np.inf, -3.0
    dense = complete_depth(sparse)
    assert dense.dtype == np.float32
    np.testing.assert_allclose(dense[10, 10:19], 8.0)


@both_passes
def test_strips_and_the_reachable_box_do_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """All work happens inside the box the measurements can reach, the pass across the lines on strips of
    columns: neither may cut off a reachable pixel or leave a seam."""
    _, rgb, sparse = box_scene()  # the wall (20 m) on every line from row 0 to 55, columns 0 to 196
    sparse[:10, 170:] = 0  # columns whose top line is lower
    whole = complete_depth(sparse, rgb)
    canvas, canvas_rgb = np.zeros((250, 300), np.float32), np.zeros((250, 300, 3), np.uint8)
    canvas[100:160, 50:250], canvas_rgb[100:160, 50:250] = sparse, rgb
    embedded, config = complete_depth(canvas, canvas_rgb), CompletionConfig()
    np.testing.assert_array_equal(embedded[100:160, 50:250], whole)
    top, left, bottom, right = 100 - config.extend_px, 50 - config.along_gap_px, 156 + config.across_gap_px, 255
    for reached in (
        embedded[top:100, 50:200],
        embedded[100:156, left:50],
        embedded[160:bottom, left:right],
        embedded[100:156, 247:right],
    ):
        np.testing.assert_allclose(reached, 20.0, rtol=1e-6)  # the scene's own image cut these off
    assert not embedded[:top].any() and not embedded[bottom:].any()
    assert not embedded[:, :left].any() and not embedded[:, right:].any()
    use_steps(classical_opencv, monkeypatch)  # the passes with strips
    np.testing.assert_array_equal(complete_depth(sparse, rgb), whole)
    monkeypatch.setattr(classical_opencv, "_STRIP_PIXELS", 7 * sparse.shape[0])  # strips of 7 columns (and a rest)
    np.testing.assert_array_equal(complete_depth(sparse, rgb), whole)


def row_with_color_steps(step_at_6: int) -> tuple[np.ndarray, np.ndarray]:
    """One row: 2 m at column 0, 10 m at column 8; gray 50 | 100 from column 3 | 100 + step_at_6 from column 6."""
    sparse = np.zeros((1, 12), np.float32)
    sparse[0, 0], sparse[0, 8] = 2.0, 10.0
    gray = np.full(12, 50, np.uint8)
    gray[3:], gray[6:] = 100, 100 + step_at_6
    return sparse, np.repeat(gray[None, :, None], 3, axis=2)


@both_passes
def test_color_steps_place_the_boundary_and_ties_fall_back_to_half_way() -> None:
    # Pixel k between the anchors joins the side away from the strongest color step in (0, k] vs (k, 8].
    sparse, rgb = row_with_color_steps(100)  # the step at 6 (100) beats the one at 3 (50): 1..5 are near
    np.testing.assert_array_equal(complete_depth(sparse, rgb)[0], [2.0] * 6 + [10.0] * 6)
    sparse, rgb = row_with_color_steps(50)  # equal steps: 1, 2 near, 6, 7 far, 3..5 tie: half-way (k <= 4)
    np.testing.assert_array_equal(complete_depth(sparse, rgb)[0], [2.0] * 5 + [10.0] * 7)
    np.testing.assert_array_equal(complete_depth(sparse)[0], [2.0] * 5 + [10.0] * 7)  # half-way, no image
    # Anchors 12 px apart: pixels 1..3 have only the one before within reach (8 px), whatever the colors say.
    sparse, rgb = np.zeros((1, 16), np.float32), np.full((1, 16, 3), 150, np.uint8)
    sparse[0, 0], sparse[0, 12], rgb[0, 0] = 2.0, 10.0, 50  # the strongest step at column 1
    np.testing.assert_array_equal(complete_depth(sparse, rgb)[0], [2.0] * 4 + [10.0] * 12)


@both_passes
def test_a_row_with_few_measurements_keeps_its_depth_edge() -> None:
    """Four segments (three points and the row's start): OpenCV once read such 1-D arrays as scalars and
    blended 5.2 m into 50 m across the edge."""
    sparse = np.zeros((1, 10), np.float32)
    sparse[0, [2, 4, 9]] = 5.0, 5.2, 50.0
    expected = [5.0, 5.0, 5.0, 2 / (1 / 5.0 + 1 / 5.2), 5.2, 5.2, 5.2, 50.0, 50.0, 50.0]  # 50 m from half-way on
    np.testing.assert_allclose(complete_depth(sparse)[0], expected, rtol=1e-6)


@both_passes
def test_wide_single_row_images_are_completed() -> None:
    """Wider than cv2.remap takes (SHRT_MAX columns): the pass along the columns splits it into strips."""
    sparse = np.zeros((1, 70_000), np.float32)
    sparse[0, ::3] = 5.0
    np.testing.assert_allclose(complete_depth(sparse), 5.0, rtol=1e-6)


@both_passes
def test_values_carried_from_one_side_are_that_sides_also_when_far() -> None:
    """Beyond 90 m (1/d <= abs / (1 - rel)) a missing side passes the same-surface test against 0: it must still
    not blend in."""
    sparse = np.zeros((60, 40), np.float32)
    sparse[10, 0:20:2] = 120.0  # a line that ends at column 18
    sparse[20:30:5, 5] = 150.0  # a column whose last measurement is row 25
    dense = complete_depth(sparse)
    np.testing.assert_allclose(dense[10, 19:27], 120.0, rtol=1e-6)  # along_gap_px past the line's end
    assert not dense[10, 27:].any()
    np.testing.assert_allclose(dense[26:58, 5], 150.0, rtol=1e-6)  # across_gap_px below the bottom line
    assert not dense[58:, 5].any()


@both_passes
@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (1, 7), (2, 2)])
def test_tiny_images_are_completed(shape: tuple[int, int]) -> None:
    sparse = np.zeros(shape, np.float32)
    sparse[0, 0] = 5.0  # carried along row 0 and down every column: all within reach
    for rgb in (None, np.full((*shape, 3), 90, np.uint8)):
        np.testing.assert_allclose(complete_depth(sparse, rgb), 5.0, rtol=1e-6)


def test_images_too_tall_for_int16_row_indices_are_refused() -> None:
    with pytest.raises(ValueError, match="sparse depth: expected at most 32735 rows"):
        complete_depth(np.zeros((32736, 1), np.float32))


@both_passes
@pytest.mark.parametrize(
    ("sparse", "rgb", "message"),
    [
        (np.zeros((4, 5, 1), np.float32), None, "sparse depth: expected a non-empty"),
        (np.zeros((0, 5), np.float32), None, "sparse depth: expected a non-empty"),
        (np.zeros((4, 5), np.uint16), None, "expected float meters"),
        (np.zeros((4, 5), np.float32), np.zeros((4, 6, 3), np.uint8), r"rgb: expected uint8 of shape \(4, 5, 3\)"),
        (np.zeros((4, 5), np.float32), np.zeros((4, 5, 3), np.float32), "rgb: expected uint8"),
        (np.zeros((4, 5), np.float32), np.zeros((4, 5), np.uint8), "rgb: expected uint8"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(sparse: np.ndarray, rgb: np.ndarray | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        complete_depth(sparse, rgb)


@pytest.mark.parametrize(
    "kwargs",
    [{"along_gap_px": -1}, {"across_gap_px": 2.5}, {"extend_px": -3}, {"same_surface_rel": -0.1}]
    + [{"same_surface_rel": 2.0}, {"same_surface_abs": float("nan")}],
)
def test_bad_config_is_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=f"CompletionConfig.{next(iter(kwargs))}"):
        CompletionConfig(**kwargs)


# Parameter sets that take other branches of the passes than the defaults do: no reach, every step one surface
# or none, no median, a 3 px median with no clearance, long reaches.
OTHER_CONFIGS = (
    CompletionConfig(along_gap_px=0, median_px=3),
    CompletionConfig(across_gap_px=0, extend_px=0),
    CompletionConfig(same_surface_rel=0.0, same_surface_abs=0.0, same_surface_slope=0.0, median_px=0),
    CompletionConfig(same_surface_rel=1.0, same_surface_abs=0.5),
    CompletionConfig(along_gap_px=3, across_gap_px=5, extend_px=100, median_clear_rows=0, median_clear_cols=0),
)


def completed_with(
    steps: object, sparse: np.ndarray, rgb: np.ndarray | None, config: CompletionConfig, monkeypatch: pytest.MonkeyPatch
) -> np.ndarray:
    use_steps(steps, monkeypatch)
    return complete_depth(sparse, rgb, config)


def assert_passes_agree(
    sparse: np.ndarray, rgb: np.ndarray | None, config: CompletionConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled and the OpenCV passes give the same float32 bits (0.0 vs -0.0 would differ, too), also from
    read-only inputs (as decoded from a message buffer)."""
    for array in (sparse, rgb):
        if array is not None:
            array.flags.writeable = False
    compiled = completed_with(compiled_steps(), sparse, rgb, config, monkeypatch)
    opencv = completed_with(classical_opencv, sparse, rgb, config, monkeypatch)
    assert (compiled > 0).any() or not (opencv > 0).any()
    np.testing.assert_array_equal(compiled.view(np.uint32), opencv.view(np.uint32), err_msg=str(config))


def random_scan(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A LiDAR-like sample of a random scene: lines 1-7 rows apart, points 1-4 px apart along them, some dropped
    or no-returns (NaN, inf, negative); the scene a tilted plane with boxes 0.5-120 m in front of it, so that
    gaps cross depth edges of every size and far surfaces."""
    rows, cols = np.indices(shape)
    inverse = rng.uniform(0.01, 0.2) + rng.uniform(-1e-3, 1e-3) * cols + rng.uniform(0, 2e-3) * rows
    for _ in range(rng.integers(0, 6)):
        top, left = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        box = (rows >= top) & (rows < top + rng.integers(1, 40)) & (cols >= left) & (cols < left + rng.integers(1, 60))
        inverse = np.where(box, 1 / rng.uniform(0.5, 120), inverse)
    depth = (1 / np.maximum(inverse, 1 / 150)).astype(np.float32)
    line_rows = np.cumsum(rng.integers(1, 8, shape[0])) - rng.integers(0, 8)
    on_line = np.isin(rows, line_rows) & (cols % rng.integers(1, 5) == 0) & (rng.random(shape) < 0.9)
    sparse = np.where(on_line, depth, 0).astype(np.float32)
    bad = on_line & (rng.random(shape) < 0.02)
    sparse[bad] = rng.choice(np.array([np.nan, np.inf, -2.0], np.float32), bad.sum())
    return sparse


def test_compiled_and_opencv_passes_agree_on_random_scenes(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    shapes = [(1, 1), (1, 9), (9, 1), (2, 40), (3, 17)] + [tuple(rng.integers(1, 90, 2)) for _ in range(150)]
    for i, shape in enumerate(shapes + [(120, 300), (375, 620)]):
        sparse = random_scan(rng, shape)
        rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8) if i % 2 else None
        if rgb is not None and i % 4 == 1:  # flat color regions: ties of the color steps
            rgb //= 128
        if i % 3 == 1:  # inputs in other memory layouts: column-major, and a view with negative strides
            sparse = np.asfortranarray(sparse)
        elif i % 3 == 2:
            sparse, rgb = (None if a is None else np.flip(np.flip(a, 1).copy(), 1) for a in (sparse, rgb))
        for config in (CompletionConfig(), OTHER_CONFIGS[i % len(OTHER_CONFIGS)]):
            assert_passes_agree(sparse, rgb, config, monkeypatch)


@pytest.mark.parametrize("layout", ["C", "F", "view"])
def test_the_compiled_measurements_and_their_box_are_opencvs(layout: str) -> None:
    """Which pixels count as measured (finite and >= the smallest normal float32) and their bounding box, compiled
    vs cv2.inRange + cv2.boundingRect, on the values at the edges of the range and in other memory layouts."""
    steps = compiled_steps()
    tiny, huge = np.finfo(np.float32).tiny, np.finfo(np.float32).max
    edges = np.array([0, -0.0, np.nan, np.inf, -np.inf, -1, tiny / 2, tiny, huge, 1e-30, 5.0], np.float32)
    rng = np.random.default_rng(3)
    for shape in [(1, 1), (1, 9), (7, 1), (13, 17), (40, 61)]:
        for share in (0.0, 0.02, 0.5):
            sparse = np.where(rng.random(shape) < share, rng.choice(edges, shape), 0).astype(np.float32)
            if layout == "F":
                sparse = np.asfortranarray(sparse)
            elif layout == "view":
                sparse = np.pad(sparse, 2)[2:-2, 2:-2]
            compiled, box = steps.find_measurements(sparse)
            compiled = compiled.copy()
            opencv, expected = classical_opencv.find_measurements(sparse)
            np.testing.assert_array_equal(compiled, opencv)
            assert tuple(box) == tuple(expected), (shape, share)


def test_the_compiled_median_network_selects_the_median_of_every_0_1_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """The median network of classical_compiled (the 20 values two windows share reduced to their ranks 7-12, then
    one window's own row merged in), its Python source run on all 2^25 inputs of 0s and 1s (bit-sliced: 64 inputs
    per word, min = and, max = or): by the 0-1 principle a comparator network that picks the median of every 0/1
    input picks the median of every input. The shared ranks alone on all 2^20 inputs."""
    steps = compiled_steps()
    monkeypatch.setattr(steps, "_sort2", lambda a, b: (a & b, a | b))
    monkeypatch.setattr(steps, "_lo", lambda a, b: a & b)
    monkeypatch.setattr(steps, "_hi", lambda a, b: a | b)

    def bits(n: int) -> tuple[np.ndarray, list[np.ndarray]]:
        index = np.arange(1 << n, dtype=np.uint32)
        return index, [np.packbits((index >> i & 1).astype(bool), bitorder="little").view(np.uint64) for i in range(n)]

    def at_least(index: np.ndarray, ones: int) -> np.ndarray:
        return np.packbits(np.bitwise_count(index) >= ones, bitorder="little").view(np.uint64)

    index, wires = bits(20)
    ranks = steps._shared_ranks.py_func(*(wires[5 * r : 5 * r + 5] for r in range(4)), 0)
    for rank, value in zip(range(7, 13), ranks, strict=True):  # rank k of 20 is 1 where >= 20 - k inputs are
        np.testing.assert_array_equal(value, at_least(index, 20 - rank))
    index, wires = bits(25)
    shared = steps._shared_ranks.py_func(*(wires[5 * r : 5 * r + 5] for r in range(1, 5)), 0)
    np.testing.assert_array_equal(steps._median_with_row.py_func(shared, wires[:5], 0), at_least(index, 13))


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (6, 1), (4, 4), (5, 5), (37, 61), (9, 200)])
def test_the_compiled_median_is_opencvs(shape: tuple[int, int]) -> None:
    """The compiled 5 x 5 median with its choice of pixels against cv2.medianBlur (replicated border) and the
    same choice written out: values with many ties and zeros, tiny images included, the pixels next to a
    measurement scattered or in runs along the rows (so that whole chunks of a row take no median)."""
    from depth_panoptic_ros.depth.classical_compiled import take_median_where_far

    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        whole = (rng.integers(0, 4, (shape[0] + 5, shape[1] + 9)) * rng.choice([0.5, 3.25])).astype(np.float32)
        box = (slice(2, 2 + shape[0]), slice(7, 7 + shape[1]))  # the box inside the map: its edges replicated
        dense = whole[box].copy()
        near = (rng.random(shape) < rng.choice([0.3, 0.8])).astype(np.uint8)
        if rng.random() < 0.5:  # runs of 1-40 pixels along the rows
            near = np.repeat(near, rng.integers(1, 41, shape[1]), axis=1)[:, : shape[1]]
            near = np.pad(near, ((0, 0), (0, shape[1] - near.shape[1])), constant_values=1)
        median = cv2.medianBlur(dense, 5)
        expected = whole.copy()
        expected[box] = np.where((near == 0) & (median > 0) & (dense > 0), median, dense)
        padded = cv2.copyMakeBorder(dense, 2, 2, 2, 2, cv2.BORDER_REPLICATE)
        take_median_where_far(whole, 2, 7, near, padded)
        np.testing.assert_array_equal(whole.view(np.uint32), expected.view(np.uint32))


def test_compiled_color_steps_are_opencvs_gray_of_the_difference() -> None:
    """The color step of the compiled pass along the rows is cv2.cvtColor(RGB2GRAY) of the absolute difference
    of neighbors, on 2^20 random colors (0.3 % of all colors round differently in a 14-bit transcription)."""
    pytest.importorskip("numba")
    import numba

    from depth_panoptic_ros.depth.classical_compiled import _gray_step

    @numba.njit
    def steps(rgb: np.ndarray) -> np.ndarray:
        out = np.empty((rgb.shape[0], rgb.shape[1] - 1), np.int64)
        for row in range(rgb.shape[0]):
            for col in range(1, rgb.shape[1]):
                out[row, col - 1] = _gray_step(rgb, row, col)
        return out

    rgb = np.random.default_rng(5).integers(0, 256, (1024, 1025, 3), dtype=np.uint8)
    expected = cv2.cvtColor(cv2.absdiff(rgb[:, 1:], rgb[:, :-1]), cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(steps(rgb), expected)


def test_compiled_and_opencv_passes_agree_on_every_real_frame(kitti_object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every input of the three protocols of bench/completion.py (hold-out seeds 0 and 1), with and without the
    image, with the defaults and, on every 4th frame, the other parameter sets."""
    for frames in load_protocols(kitti_object.parent).values():
        for i, frame in enumerate(frames.values()):
            for seed in (0,) if frame.rings is not None else (0, 1):
                sparse, _ = frame.split(seed, 0.2)
                for config in (CompletionConfig(),) + (OTHER_CONFIGS if i % 4 == 0 and seed == 0 else ()):
                    for rgb in (frame.rgb, None):
                        assert_passes_agree(sparse, rgb, config, monkeypatch)


def _run_with_broken_numba(breakage: str, checks: str) -> subprocess.CompletedProcess:
    """Python with numba broken by ``breakage`` before the package is imported, then ``checks``; it must exit 0."""
    setup = (
        "import numpy as np\n"
        "from depth_panoptic_ros.depth import classical\n"
        "sparse = np.zeros((20, 30), np.float32); sparse[::4, ::2] = 7.0\n"
        "dense = classical.complete_depth(sparse); classical.complete_depth(sparse)\n"
        "assert np.allclose(dense[:17], 7.0), dense\n"
    )
    code = f"{breakage}\n{setup}{checks}print(classical.PASSES)\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    return run


def test_without_numba_the_opencv_passes_run_and_say_so_once() -> None:
    """numba cannot be imported (not installed, or no release for this Python yet): the module warns once at
    import and completes with the OpenCV passes."""
    run = _run_with_broken_numba(
        "import sys; sys.modules['numba'] = None",
        "from depth_panoptic_ros.depth import classical_opencv\n"
        "assert classical.fill_passes is classical_opencv.fill_passes, classical.fill_passes\n"
        "assert classical.smooth_far_from_measurements is classical_opencv.smooth_far_from_measurements\n"
        "assert classical.find_measurements is classical_opencv.find_measurements\n",
    )
    assert run.stdout.strip() == "OpenCV (numba not available)"
    assert run.stderr.count("classical depth completion:") == 1, run.stderr
    assert "running its OpenCV passes" in run.stderr


def test_without_a_writable_numba_cache_the_kernels_compile_in_memory() -> None:
    """No cache directory numba can write (its locators all refuse): ``cache=True`` would raise at decoration and
    the package would not import; instead every kernel compiles in memory, with one warning."""
    run = _run_with_broken_numba(
        "import numba.core.caching as c; c.CacheImpl._locator_classes = []",
        "from depth_panoptic_ros import compiled\n"
        "from depth_panoptic_ros.depth import classical_compiled\n"
        "from depth_panoptic_ros.pipeline import Pipeline\n"  # imports the projection, instance and cloud kernels
        "from depth_panoptic_ros.evaluation.pq import joint_histogram\n"
        "assert not compiled.can_cache() and not compiled.COMPILE['cache']\n"
        "assert classical.fill_passes is classical_compiled.fill_passes\n"
        "assert classical.smooth_far_from_measurements is classical_compiled.smooth_far_from_measurements\n"
        "assert classical.find_measurements is classical_compiled.find_measurements\n"
        "ids = np.array([[0, 1, 1]], np.uint32)\n"
        "assert joint_histogram(ids, np.array([1]), ids, np.array([1])).tolist() == [[1, 0], [0, 2]]\n",
    )
    assert run.stdout.strip() == "compiled (numba)"
    assert run.stderr.count("numba has no writable cache directory") == 1, run.stderr


def test_ip_basic_inversion_drops_what_it_cannot_invert() -> None:
    sparse = np.array([[0.0, 10.0, 150.0, np.nan, 0.05, 99.5]], np.float32)
    np.testing.assert_array_equal(invert_depth(sparse, 100.0), [[0, 90, 0, 0, 0, 0.5]])


def test_ip_basic_extends_each_top_value_upwards() -> None:
    image = np.array([[0, 0, 0], [0, 5, 0], [7, 0, 0], [0, 3, 0]], np.float32)
    expected = np.array([[7, 5, 0], [7, 5, 0], [7, 0, 0], [0, 3, 0]], np.float32)
    np.testing.assert_array_equal(extend_top_upwards(image), expected)


def test_ip_basic_fills_only_empty_pixels_with_the_window_maximum() -> None:
    image = np.array([[0, 0, 0, 0], [0, 4, 0, 0], [0, 0, 0, 9]], np.float32)
    expected = np.array([[4, 4, 4, 0], [4, 4, 9, 9], [4, 4, 9, 9]], np.float32)
    np.testing.assert_array_equal(fill_empty(image, np.ones((3, 3), np.uint8)), expected)


def test_ip_basic_keeps_a_constant_scene_and_prefers_the_near_side() -> None:
    sparse = np.zeros((30, 30), np.float32)
    sparse[::3, ::3] = 10.0
    dense = ip_basic_complete(sparse)
    np.testing.assert_allclose(dense, 10.0, rtol=1e-6)  # extrapolation fills the whole image
    sparse[:, 15:] = np.where(sparse[:, 15:] > 0, 40.0, 0)  # a 10 m surface (columns <= 12) left of a 40 m one
    dense = ip_basic_complete(sparse, blur="bilateral")
    np.testing.assert_allclose(dense[5:25, 13:15], 10.0, rtol=1e-5)  # the near side takes the pixels between
    np.testing.assert_allclose(dense[5:25, 16:], 40.0, rtol=1e-5)
    with pytest.raises(ValueError, match="blur"):
        ip_basic_complete(sparse, blur="box")


def test_holdout_split_partitions_the_measurements() -> None:
    rng = np.random.default_rng(0)
    depth = np.where(rng.random((100, 100)) < 0.3, 5.0, 0).astype(np.float32)
    sparse, hidden = holdout_split(depth, 0.2, np.random.default_rng(1))
    assert not np.any((sparse > 0) & (hidden > 0))
    np.testing.assert_array_equal(sparse + hidden, depth)
    assert 0.17 < (hidden > 0).sum() / (depth > 0).sum() < 0.23
    with pytest.raises(ValueError, match="holdout"):
        holdout_split(depth, 1.0, rng)


# Issue 11's goal on every real protocol: mean RMSE and mean MAE at most 0.85x IP-Basic's, no frame worse.
MEAN_RATIO_GOAL = 0.85


def test_beats_ip_basic_on_every_real_kitti_protocol(kitti_object) -> None:
    """The devkit-style figure (holes filled as the KITTI devkit fills them), seed 0 of the hold-outs."""
    protocols = load_protocols(kitti_object.parent)
    assert {"object hold-out", "ring geometry"} <= set(protocols)
    assert {"object/000000", "object/000009"} <= set(protocols["object hold-out"])
    for protocol, frames in protocols.items():
        ours, theirs = [], []
        for name, frame in frames.items():
            sparse, scored = frame.split(0, 0.2)
            for errors, dense in ((ours, complete_depth(sparse, frame.rgb)), (theirs, ip_basic_complete(sparse))):
                metrics = depth_errors(dense, scored)
                errors.append((metrics["devkit_rmse_mm"], metrics["devkit_mae_mm"]))
            assert ours[-1][0] <= theirs[-1][0] and ours[-1][1] <= theirs[-1][1], (protocol, name, ours[-1], theirs[-1])
        ratio = np.mean(ours, axis=0) / np.mean(theirs, axis=0)
        assert np.all(ratio <= MEAN_RATIO_GOAL), (protocol, ratio)


def test_benchmark_reports_every_protocol_frame_and_mean(kitti_object) -> None:
    result = run_completion_benchmark(kitti_object.parent, seeds=(0,))
    table = format_table(result)
    for protocol, summary in result["protocols"].items():
        assert f"### {protocol}" in table
        baseline = summary["methods"][BASELINE]
        for name, row in summary["methods"].items():
            assert set(row["frames"]) == set(summary["frames"])
            mean = row["mean"]
            assert mean["rmse_mm"] == pytest.approx(np.mean([f["rmse_mm"] for f in row["frames"].values()]))
            assert mean["rmse_ratio"] == pytest.approx(mean["rmse_mm"] / baseline["mean"]["rmse_mm"])
            assert 0 < mean["coverage"] <= 1 and mean["rmse_mm"] >= mean["mae_mm"] > 0
            assert mean["covered_rmse_mm"] >= mean["covered_mae_mm"] > 0
            assert name in table
        assert baseline["mean"]["rmse_ratio"] == pytest.approx(1.0)
        assert set(summary["median_ms"]) == set(summary["methods"]) and min(summary["median_ms"].values()) > 0
    assert table.count("Median time per frame:") == len(result["protocols"])
    assert len(result["load_average"]) == 2
    assert result["protocols"]["object hold-out"]["frames"]["object/000001"] == "375x1242"
    assert all(ms > 0 for ms in result["median_ms"].values())


@pytest.mark.slow
def test_benchmark_scores_a_model_s_learned_completion_against_the_classical_it_refines(kitti_object, tmp_path) -> None:
    """An untrained completion network returns the classical depth it refines (ratios exactly 1, never worse); a
    constant residual of +1 m makes it worse on every frame; its classical settings are the model's own."""
    import torch

    from depth_panoptic_ros.bench.completion import LEARNED, REFINED, methods
    from depth_panoptic_ros.classes import ClassTable
    from depth_panoptic_ros.model import DepthPanopticModel, ModelConfig
    from depth_panoptic_ros.panoptic.config import PanopticNetConfig

    (tmp_path / "object").symlink_to(kitti_object)
    net = PanopticNetConfig(backbone="r18", fpn_channels=64, head_channels=64, embed_dim=16)
    model = DepthPanopticModel(ModelConfig(panoptic=net), ClassTable.cityscapes()).eval()
    assert REFINED not in methods(model) and LEARNED in methods(model)  # the package's settings: "classical"
    model.pipeline_settings = {"completion": {"median_px": 0, "same_surface_slope": 0.0}}
    result = run_completion_benchmark(tmp_path, seeds=(0,), model=model)
    summary = result["protocols"]["object hold-out"]
    versus = summary["learned_vs_refined"]
    assert set(versus["frames"]) == set(summary["frames"]) and versus["worse"] == []
    assert all(row == {"rmse": 1.0, "mae": 1.0} for row in versus["frames"].values())
    refined = summary["methods"][REFINED]["frames"]
    assert refined != summary["methods"]["classical"]["frames"]  # the model's settings, not the package default
    assert "worse on 0 of" in format_table(result)

    with torch.no_grad():
        model.completion.head.bias.fill_(float(np.arctanh(1 / model.config.completion.residual_scale)))
    summary = run_completion_benchmark(tmp_path, seeds=(0,), model=model)["protocols"]["object hold-out"]
    assert summary["learned_vs_refined"]["worse"] == list(summary["frames"])
    assert summary["methods"][LEARNED]["mean"]["mae_mm"] > summary["methods"][REFINED]["mean"]["mae_mm"]


def test_bench_completion_model_errors_are_one_line(tmp_path, capsys) -> None:
    from depth_panoptic_ros.cli import main

    missing = tmp_path / "missing.safetensors"
    assert main(["bench", "completion", "--data", str(tmp_path), "--model", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    assert main(["bench", "completion", "--data", str(tmp_path), "--model", str(missing), "--lofo"]) == 2
    assert "--model goes with the plain benchmark" in capsys.readouterr().err
