"""Color maps and visualization: panoptic palette, overlay, depth coloring with legend, contact sheet."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.products.canvas import FONT, contact_sheet, pack_rgb, put_text, unpack_rgb
from depth_panoptic_ros.products.canvas_compiled import _UNCOVERED, blend_outlined
from depth_panoptic_ros.products.depth_colormap import (
    STUFF_BRIGHTNESS,
    colorize_depth,
    depth_at,
    depth_colormap_panoptic,
    nearness,
)
from depth_panoptic_ros.products.instance_depth import instance_depth
from depth_panoptic_ros.products.palette import (
    INSTANCE_JITTER,
    colorize_panoptic,
    draw_boundaries,
    overlay,
    overlay_panoptic,
    overlay_segments,
    paint_segments,
    segment_boundaries,
)
from depth_panoptic_ros.products.segments import SegmentRuns

CITYSCAPES = ClassTable.cityscapes()
ROAD, SKY, CAR = 7, 23, 26
COLOR = {c.id: np.array(c.color) for c in CITYSCAPES.classes}


def turbo(level: int) -> np.ndarray:
    """RGB of OpenCV's TURBO map at an 8-bit level."""
    return cv2.applyColorMap(np.array([[level]], np.uint8), cv2.COLORMAP_TURBO)[0, 0, ::-1].astype(int)


def test_panoptic_colors_void_black_stuff_exact_things_near_their_class() -> None:
    ids = np.zeros((6, 8), np.int32)
    ids[0, :4], ids[1, :4] = ROAD * 1000, SKY * 1000
    ids[2:4, :4], ids[2:4, 4:] = CAR * 1000 + 1, CAR * 1000 + 2
    ids[4, :] = CAR * 1000  # a crowd region of cars: instance 0
    image = colorize_panoptic(ids, CITYSCAPES)

    assert image.shape == (6, 8, 3) and image.dtype == np.uint8
    assert (image[5] == 0).all() and (image[0, 4:] == 0).all()
    assert (image[0, :4] == COLOR[ROAD]).all() and (image[1, :4] == COLOR[SKY]).all()
    assert (image[4] == COLOR[CAR]).all()
    for instance in (image[2, 0], image[2, 4]):
        assert np.abs(instance.astype(int) - COLOR[CAR]).max() <= INSTANCE_JITTER
    assert not np.array_equal(image[2, 0], image[2, 4])


def test_a_segment_keeps_its_color_wherever_and_with_whatever_it_appears() -> None:
    """Same id, same color: within a map (two disjoint regions) and across maps, so colors are stable over frames."""
    ids = np.full((5, 9), ROAD * 1000, np.int32)
    ids[1, 1:3] = ids[3, 6:8] = CAR * 1000 + 7
    image = colorize_panoptic(ids, CITYSCAPES)
    assert np.array_equal(image[1, 1], image[3, 7]) and np.array_equal(image[1, 2], image[3, 6])
    alone = colorize_panoptic(np.array([[CAR * 1000 + 7]]), CITYSCAPES)
    assert np.array_equal(alone[0, 0], image[1, 1])


@pytest.mark.parametrize("class_id", [c.id for c in CITYSCAPES.classes if c.is_thing])
def test_neighboring_instances_of_every_thing_class_differ(class_id: int) -> None:
    colors = colorize_panoptic(class_id * 1000 + np.arange(1, 31)[None, :], CITYSCAPES)[0].astype(int)
    assert np.abs(np.diff(colors, axis=0)).max(axis=1).min() >= 16
    assert np.abs(colors - COLOR[class_id]).max() <= INSTANCE_JITTER


def test_unknown_class_is_named() -> None:
    with pytest.raises(ValueError, match=r"\[99001\].*not in the class table"):
        colorize_panoptic(np.full((2, 2), 99001), CITYSCAPES)


def test_overlay_blends_by_alpha_and_outlines_segments() -> None:
    rgb = np.full((4, 6, 3), 100, np.uint8)
    color = np.full((4, 6, 3), 200, np.uint8)
    assert (overlay(rgb, color, 0.25) == 125).all()
    assert (overlay(rgb, color, 0.0) == 100).all() and (overlay(rgb, color, 1.0) == 200).all()

    ids = np.zeros((4, 6), np.int32)
    ids[:, 3:] = CAR * 1000 + 1
    out = overlay(rgb, color, 0.5, ids, boundary_color=(1, 2, 3))
    assert (out[:, 2] == (1, 2, 3)).all()
    assert (np.delete(out, 2, axis=1) == 150).all()
    assert segment_boundaries(ids).sum() == 4


@pytest.mark.parametrize("alpha", [0.5, 0.6, 0.4, 0.25, 0.123, 0.0, 1.0])
@pytest.mark.parametrize("stripes", ["rows", "columns"])
def test_overlay_of_segments_rounds_as_cv2_on_every_pixel_and_color_pair(alpha: float, stripes: str) -> None:
    """Every (pixel, color) byte pair, blended by the kernel (in runs of 299 pixels: whole blocks and a rest, or of
    one pixel) and by cv2.addWeighted over the painted image (its vector code and its scalar tail)."""
    level = np.arange(256, dtype=np.uint8)
    colors = np.stack([level, level[::-1], np.roll(level, 85)], axis=1)
    rgb = np.broadcast_to(np.resize(level, 299)[None, :, None], (256, 299, 3))
    ids = np.broadcast_to(np.arange(256)[:, None], (256, 299))
    if stripes == "columns":
        rgb, ids = rgb.transpose(1, 0, 2), ids.T
    runs = SegmentRuns.of(ids)
    expected = overlay(rgb, paint_segments(runs, colors), alpha)
    np.testing.assert_array_equal(overlay_segments(rgb, runs, colors, alpha), expected)


def test_panoptic_overlay_is_the_overlay_of_the_color_image() -> None:
    rng = np.random.default_rng(5)
    ids = np.where(rng.random((37, 53)) < 0.5, CAR * 1000 + rng.integers(0, 9, (37, 53)), ROAD * 1000)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for alpha in (0.5, 0.4):
        expected = overlay(rgb, colorize_panoptic(ids, CITYSCAPES), alpha, ids, (1, 2, 3))
        np.testing.assert_array_equal(overlay_panoptic(rgb, ids, CITYSCAPES, alpha, (1, 2, 3)), expected)
    np.testing.assert_array_equal(
        overlay_panoptic(rgb[:, ::-1], ids, CITYSCAPES),
        overlay(rgb[:, ::-1], colorize_panoptic(ids, CITYSCAPES), panoptic_ids=ids),
    )
    with pytest.raises(ValueError, match=r"panoptic_ids: expected size \(37, 53\)"):
        overlay_panoptic(rgb, ids[1:], CITYSCAPES)
    with pytest.raises(ValueError, match=r"alpha: expected a value in \[0, 1\]"):
        overlay_panoptic(rgb, ids, CITYSCAPES, -0.1)


def test_boundaries_are_drawn_exactly_on_the_outline_pixels() -> None:
    ids = np.full((5, 7), ROAD * 1000, np.int32)
    ids[1:3, 2:5] = CAR * 1000 + 1
    image = np.zeros((5, 7, 3), np.uint8)
    draw_boundaries(image, ids, (9, 8, 7))
    # Outlines: the pixel left of and above the car, and the car's own right column and bottom row.
    expected = np.zeros((5, 7), bool)
    expected[1:3, 1] = expected[0, 2:5] = expected[1:3, 4] = expected[2, 2:5] = True
    np.testing.assert_array_equal(segment_boundaries(ids), expected)
    assert (image[expected] == (9, 8, 7)).all() and (image[~expected] == 0).all()
    with pytest.raises(ValueError, match="C-contiguous"):
        draw_boundaries(np.zeros((7, 5, 3), np.uint8).transpose(1, 0, 2), ids, (1, 1, 1))
    with pytest.raises(ValueError, match=r"panoptic_ids: expected size \(6, 7\)"):  # never written past the image
        draw_boundaries(np.zeros((6, 7, 3), np.uint8), ids, (1, 1, 1))


def test_packed_colors_unpack_to_the_same_rgb() -> None:
    colors = np.random.default_rng(3).integers(0, 256, (50, 3), dtype=np.uint8)
    words = pack_rgb(colors)
    assert words.dtype == np.uint32 and words.shape == (50,)
    np.testing.assert_array_equal(unpack_rgb(words.reshape(5, 10)), colors.reshape(5, 10, 3))
    np.testing.assert_array_equal(unpack_rgb(words.reshape(10, 5)[:, ::2]), colors.reshape(10, 5, 3)[:, ::2])
    assert unpack_rgb(np.zeros((0, 4), np.uint32)).shape == (0, 4, 3)
    assert colorize_panoptic(np.zeros((0, 4), np.int32), CITYSCAPES).shape == (0, 4, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"color": np.zeros((4, 5, 3), np.uint8)}, r"color: expected size \(4, 6\)"),
        ({"rgb": np.zeros((4, 6), np.uint8)}, r"rgb: expected an \(H, W, 3\) uint8"),
        ({"alpha": 1.5}, r"alpha: expected a value in \[0, 1\]"),
        ({"panoptic_ids": np.zeros((3, 6), np.int32)}, r"panoptic_ids: expected size \(4, 6\)"),
    ],
)
def test_overlay_bad_input_is_named(kwargs: dict, message: str) -> None:
    args = {"rgb": np.zeros((4, 6, 3), np.uint8), "color": np.zeros((4, 6, 3), np.uint8), "alpha": 0.5} | kwargs
    with pytest.raises(ValueError, match=message):
        overlay(**args)


def test_depth_colors_follow_the_color_map_linear_and_inverse() -> None:
    depth = np.array([[2.0, 4.0, 8.0, 0.0, np.nan, 100.0]], np.float32)
    linear = colorize_depth(depth, near=2.0, far=8.0, inverse=False, legend=False, invalid_color=(1, 2, 3)).astype(int)
    # Nearness (8 - d) / 6: 1, 2/3, 0; beyond far clips to 0.
    for pixel, level in ((0, 255), (1, 170), (2, 0), (5, 0)):
        np.testing.assert_array_equal(linear[0, pixel], turbo(level))
    assert (linear[0, 3] == (1, 2, 3)).all() and (linear[0, 4] == (1, 2, 3)).all()
    inverse = colorize_depth(depth, near=2.0, far=8.0, legend=False).astype(int)  # the default
    # (1/4 - 1/8) / (1/2 - 1/8) = 1/3.
    np.testing.assert_array_equal(inverse[0, 1], turbo(85))
    near_red = linear[0, 0] - linear[0, 2]
    assert near_red[0] > 0 and near_red[2] < 0


def test_depth_range_defaults_to_the_valid_data() -> None:
    depth = np.array([[0.0, 3.0, 5.0, 9.0]], np.float32)
    image = colorize_depth(depth, legend=False).astype(int)
    np.testing.assert_array_equal(image[0, 1], turbo(255))
    np.testing.assert_array_equal(image[0, 3], turbo(0))
    assert colorize_depth(np.zeros((3, 4), np.float32), legend=False).max() == 0


def test_one_end_of_the_range_given_the_other_from_the_data() -> None:
    depth = np.array([[3.0, 4.0, 0.0]], np.float32)
    # far from the data (4): nearness of 3 is (4 - 3) / (4 - 2) = 0.5 -> level rint(127.5) = 128.
    image = colorize_depth(depth, near=2.0, inverse=False, legend=False).astype(int)
    np.testing.assert_array_equal(image[0, :2], [turbo(128), turbo(0)])
    # The data's far end (4) is nearer than near = 5: far becomes near + 1 m and both clip to the near color.
    np.testing.assert_array_equal(
        colorize_depth(depth, near=5.0, inverse=False, legend=False)[0, :2].astype(int), [turbo(255)] * 2
    )
    # near from the data (3): nearness of 4 is (10 - 4) / (10 - 3) = 6/7 -> level rint(218.57) = 219.
    np.testing.assert_array_equal(
        colorize_depth(depth, far=10.0, inverse=False, legend=False)[0, 1].astype(int), turbo(219)
    )


def test_nearness_keeps_float32_and_accepts_any_real_input() -> None:
    t = nearness(np.array([2.0, 5.0, 8.0, 0.0], np.float32), 2.0, 8.0)
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t, [1.0, 0.5, 0.0, 1.0])
    inverse = nearness(np.array([4, 16]), 2, 16, inverse=True)
    np.testing.assert_allclose(inverse, [(1 / 4 - 1 / 16) / (1 / 2 - 1 / 16), 0.0])
    assert float(nearness(4.0, 2.0, 8.0)) == pytest.approx(2 / 3)


@pytest.mark.parametrize("inverse", [False, True])
def test_nearness_and_depth_at_round_trip(inverse: bool) -> None:
    d = np.linspace(1.5, 60.0, 13)
    np.testing.assert_allclose(depth_at(nearness(d, 1.5, 60.0, inverse), 1.5, 60.0, inverse), d)


def test_legend_is_appended_with_the_color_bar_and_tick_labels() -> None:
    depth = np.linspace(2.0, 50.0, 120 * 160, dtype=np.float32).reshape(120, 160)
    plain = colorize_depth(depth, legend=False)
    with_legend = colorize_depth(depth)
    assert with_legend.shape[0] == 120 and with_legend.shape[1] > 160
    assert np.array_equal(with_legend[:, :160], plain)
    legend = with_legend[:, 160:].astype(int)
    bar_column = legend[:, np.abs(legend - turbo(255)).sum(axis=2).min(axis=0).argmin()]
    np.testing.assert_array_equal(bar_column[0], turbo(255))  # near at the top
    np.testing.assert_array_equal(bar_column[-1], turbo(0))
    assert (legend == 255).all(axis=2).sum() > 20  # white tick text


@pytest.mark.parametrize(
    ("depth", "kwargs", "message"),
    [
        (np.ones((2, 3, 1), np.float32), {}, r"depth: expected an \(H, W\) array"),
        (np.ones((2, 3), np.float32), {"near": 5.0, "far": 5.0}, "0 < near < far"),
        (np.ones((2, 3), np.float32), {"near": 0.0, "far": 5.0}, "0 < near < far"),
    ],
)
def test_colorize_depth_bad_input_is_named(depth: np.ndarray, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        colorize_depth(depth, **kwargs)


def panoptic_scene() -> tuple[np.ndarray, np.ndarray]:
    """200x300: road below, sky above, a near car (5 m), a far car (70 m), a tiny car (3 m) and a void patch."""
    ids = np.full((200, 300), SKY * 1000, np.int32)
    ids[100:] = ROAD * 1000
    ids[60:160, 20:140] = CAR * 1000 + 1
    ids[60:160, 160:280] = CAR * 1000 + 2
    ids[10:14, 10:15] = CAR * 1000 + 3
    ids[180:, 280:] = 0
    depth = np.full((200, 300), 30.0, np.float32)
    depth[ids == CAR * 1000 + 1] = 5.0
    depth[ids == CAR * 1000 + 2] = 70.0
    depth[ids == CAR * 1000 + 3] = 3.0
    return ids, depth


def test_instance_depth_view_colors_things_by_depth_and_dims_stuff() -> None:
    ids, depth = panoptic_scene()
    table = instance_depth(ids, depth, CameraModel.from_matrices(300, 200, np.diag([200.0, 200.0, 1.0])), CITYSCAPES)
    image = depth_colormap_panoptic(ids, table, CITYSCAPES, near=2.0, far=80.0).astype(int)

    near_car, far_car = image[62, 22], image[62, 162]
    assert near_car[0] > far_car[0] and near_car[2] < far_car[2]
    np.testing.assert_allclose(image[120, 5], COLOR[ROAD] * STUFF_BRIGHTNESS, atol=1)
    assert (image[190, 290] == 0).all()
    assert (image[99, 5] == 255).all()  # sky / road outline

    text = np.argwhere((image[60:159, 20:139] != near_car).any(axis=2)) + (60, 20)
    assert 50 < len(text) < 0.2 * 99 * 119  # "car 5.0 m" on the big car, centered on its box
    assert text.min(axis=0)[0] < 110 < text.max(axis=0)[0] and text.min(axis=0)[1] < 80 < text.max(axis=0)[1]
    assert (image[10:13, 10:14] == image[10, 10]).all()  # no label on a 20-pixel car


def test_instance_depth_view_without_any_thing_depth_shows_things_unlabeled() -> None:
    ids, depth = panoptic_scene()
    depth[ids // 1000 == CAR] = 0.0  # e.g. cars beyond the LiDAR's reach
    table = instance_depth(ids, depth, CameraModel.from_matrices(300, 200, np.diag([200.0, 200.0, 1.0])), CITYSCAPES)
    image = depth_colormap_panoptic(ids, table, CITYSCAPES)
    assert image.shape == (200, 300, 3)
    np.testing.assert_allclose(image[120, 5], COLOR[ROAD] * STUFF_BRIGHTNESS, atol=1)


def test_instance_depth_view_blends_over_the_image() -> None:
    ids, depth = panoptic_scene()
    table = instance_depth(ids, depth, CameraModel.from_matrices(300, 200, np.diag([200.0, 200.0, 1.0])), CITYSCAPES)
    bare = depth_colormap_panoptic(ids, table, CITYSCAPES).astype(int)
    blended = depth_colormap_panoptic(ids, table, CITYSCAPES, rgb=np.full((200, 300, 3), 200, np.uint8)).astype(int)
    stuff = (slice(120, 170), slice(0, 10))
    assert (np.abs(blended[stuff] - (0.4 * 200 + 0.6 * bare[stuff])) <= 1).all()
    with pytest.raises(ValueError, match=r"table: expected instance_depth\(\) of this map"):
        depth_colormap_panoptic(np.where(ids == ROAD * 1000, CAR * 1000 + 8, ids), table, CITYSCAPES)


def nine_stamps(image: np.ndarray, text: str, center: tuple[float, float], scale: float) -> None:
    """The outlined label drawn as the definition says: the text in black at the 8 one-pixel offsets, then in
    white, each an anti-aliased cv2.putText blended over the last (put_text's placement)."""
    thickness = max(1, round(scale * 1.5))
    (w, h), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    x = int(np.clip(center[0] - w / 2, 1, max(image.shape[1] - w - 1, 1)))
    y = int(np.clip(center[1] + h / 2, h + 1, max(image.shape[0] - baseline - 1, h + 1)))
    for dx, dy in [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy]:
        cv2.putText(image, text, (x + dx, y + dy), FONT, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    cv2.putText(image, text, (x, y), FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)


@pytest.mark.parametrize(
    ("size", "scale"), [((375, 1242), 0.375), ((1024, 2048), 1.024), ((30, 90), 0.35), ((400, 900), 3.0)]
)
def test_labels_match_the_nine_stamp_drawing_to_a_few_levels(size: tuple[int, int], scale: float) -> None:
    rng = np.random.default_rng(3)
    background = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    ours, stamped = background.copy(), background.copy()
    for k in range(12):  # anywhere, also past the borders (moved inside) and overlapping each other
        center = (rng.uniform(-40, size[1] + 40), rng.uniform(-20, size[0] + 20))
        # depth labels, and glyphs that reach beyond the text box ('|' above it, 'j' and '_' below it)
        text = f"car {rng.uniform(0, 80):.1f} m" if k % 2 else "|Wjy_| 7.5 m"
        put_text(ours, text, center, scale)
        nine_stamps(stamped, text, center, scale)
    # cv2.putText clips its strokes to the image and anti-aliases the cut ends anew: glyphs that reach past the
    # image ('|' of a label moved to the top) differ there by design, so the comparison leaves out 2 px at the edges
    difference = np.abs(ours.astype(int) - stamped)[2:-2, 2:-2]
    drawn = (stamped != background).any(axis=2)[2:-2, 2:-2]
    assert drawn.sum() > 200
    # One rounding instead of nine: anti-aliased edges within 8 levels, and mostly within 2.
    assert difference.max() <= 8
    assert (difference > 2).any(axis=2).sum() < 0.05 * drawn.sum()
    assert ((ours != background).any(axis=2)[2:-2, 2:-2] != drawn).sum() < 0.01 * drawn.sum()


def test_label_kernel_composites_as_its_definition_in_float32() -> None:
    """blend_outlined against its docstring's formula in numpy float32, the stamps' product in their order, on
    random masks (any coverage level), a box inside a larger image and colors of every channel."""
    rng = np.random.default_rng(8)
    for _ in range(20):
        h, w = rng.integers(1, 30, 2)
        coverage = np.zeros((h + 6, w + 6), np.uint8)
        coverage[2:-2, 2:-2] = np.where(rng.random((h + 2, w + 2)) < 0.3, 255, rng.integers(0, 256, (h + 2, w + 2)))
        image = rng.integers(0, 256, (h + 4, w + 9, 3), dtype=np.uint8)
        color, outline = (rng.integers(0, 256, 3).astype(np.float32) for _ in range(2))
        box = (slice(1, 1 + h), slice(5, 5 + w))
        uncovered = _UNCOVERED[coverage]
        kept = np.ones((h, w), np.float32)
        for dr, dc in [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]:
            kept *= uncovered[2 + dr : 2 + dr + h, 3 + dc : 3 + dc + w]
        a = (np.float32(1) - uncovered[2 : 2 + h, 3 : 3 + w])[..., None]
        kept = kept[..., None]
        under = image[box].astype(np.float32) * kept + outline * (np.float32(1) - kept)
        expected = image.copy()
        expected[box] = np.rint(under * (np.float32(1) - a) + color * a)

        region = image[box]
        blend_outlined(region.reshape(h, -1), coverage, 2, 3, color, outline)
        np.testing.assert_array_equal(image, expected)


def test_labels_are_drawn_into_images_whose_pixels_are_not_contiguous() -> None:
    """A channel-reversed view (BGR of an RGB image): the label's box is blended in a copy and written back."""
    image = np.random.default_rng(2).integers(0, 256, (60, 200, 3), dtype=np.uint8)
    reference = image.copy()
    put_text(reference, "car 12.5 m", (100, 30), 1.0, (10, 200, 30))
    view = image[:, :, ::-1]
    put_text(view, "car 12.5 m", (100, 30), 1.0, (30, 200, 10))
    np.testing.assert_array_equal(image, reference)


def test_contact_sheet_tiles_titled_images() -> None:
    images = [np.full((20, 30, 3), 10 * k + 50, np.uint8) for k in range(3)]
    images[1] = np.full((20, 40, 3), 60, np.uint8)
    images[2] = np.full((25, 30, 3), 70, np.uint8)
    sheet = contact_sheet([("a", images[0]), ("b", images[1]), ("c", images[2])], columns=2, title_height=16)
    assert sheet.shape == (2 * (25 + 16), 2 * 40, 3)
    assert (sheet[16:36, 0:30] == 50).all()
    assert (sheet[16:36, 40:80] == 60).all()
    assert (sheet[41 + 16 : 41 + 41, 0:30] == 70).all()
    assert (sheet[:16, :40] > 100).any()  # the title is drawn in its bar
    with pytest.raises(ValueError, match="columns must be >= 1"):
        contact_sheet([("a", images[0])], columns=0)
    with pytest.raises(ValueError, match=r"'bad'.*uint8"):
        contact_sheet([("bad", images[0].astype(np.float32))], columns=1)


def test_kitti_depth_ground_truth_colors_exactly_its_valid_pixels(kitti_depth_demo: Path) -> None:
    png = cv2.imread(str(kitti_depth_demo / "depth" / "0000000005.png"), cv2.IMREAD_UNCHANGED)
    scale = json.loads((kitti_depth_demo / "intrinsics.json").read_text())["depth_png_scale"]
    depth = png.astype(np.float32) / scale
    image = colorize_depth(depth, inverse=True)
    valid = depth > 0
    assert image.shape[0] == depth.shape[0] and image.shape[1] > depth.shape[1]
    map_part = image[:, : depth.shape[1]]
    assert (map_part[~valid] == 0).all()
    assert (map_part[valid].max(axis=1) > 0).all()  # no TURBO color is black
    nearest = np.unravel_index(np.argmin(np.where(valid, depth, np.inf)), depth.shape)
    farthest = np.unravel_index(np.argmax(depth), depth.shape)
    np.testing.assert_array_equal(map_part[nearest], turbo(255))
    np.testing.assert_array_equal(map_part[farthest], turbo(0))
