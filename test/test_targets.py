"""Panoptic FCN targets on hand-built maps (Cityscapes table: car id 26 is thing channel 2, road id 7 stuff 0)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.training.targets import (
    TargetConfig,
    build_targets,
    depth_at_mask_stride,
    gaussian_radius,
)

TABLE = ClassTable.cityscapes()
CAR_CHANNEL = int(np.flatnonzero(TABLE.thing_indices == TABLE.names.index("car"))[0])
ROAD_CHANNEL = int(np.flatnonzero(TABLE.stuff_indices == TABLE.names.index("road"))[0])


def square_map(top: int = 40, left: int = 100, side: int = 64, shape=(256, 384)) -> np.ndarray:
    ids = np.zeros(shape, dtype=np.int64)
    ids[top : top + side, left : left + side] = 26001
    return ids


def test_cornernet_radius_by_hand() -> None:
    # a 64 px square at stride 8 is 8 x 8 cells; the third quadratic gives the smallest root:
    # a = 4 * 0.7 = 2.8, b = -2 * 0.7 * 16 = -22.4, c = -0.3 * 64 = -19.2, r = (b + sqrt(b^2 - 4ac)) / 2
    expected = (-22.4 + math.sqrt(22.4**2 + 4 * 2.8 * 19.2)) / 2  # 2.1866
    got = gaussian_radius(torch.tensor([8.0]), torch.tensor([8.0]), 0.7)
    assert got.item() == pytest.approx(expected)
    assert got.item() == pytest.approx(2.18655, abs=1e-4)


def test_single_square_center_levels_and_gaussian() -> None:
    targets = build_targets(square_map(), TABLE)
    # sqrt(64 * 64) = 64 lies in (1, 128) and (64, 256) (inclusive), in no other range
    assert targets.thing_levels.tolist() == [[True, True, False, False, False]]
    assert targets.thing_channels.tolist() == [CAR_CHANNEL]
    # center of mass: rows 40..103 -> 71.5, columns 100..163 -> 131.5 (pixel index coordinates)
    for level, (stride, radius) in enumerate([(8, 2), (16, 1)]):
        heat = targets.centers[level]
        cy, cx = int(71.5 // stride), int(131.5 // stride)
        assert heat.max() == 1.0 and heat[CAR_CHANNEL, cy, cx] == 1.0
        assert torch.count_nonzero(heat) == (2 * radius + 1) ** 2  # radius 2 at stride 8 (8x8 cells), 1 at 16 (4x4)
        sigma = (2 * radius + 1) / 3
        assert heat[CAR_CHANNEL, cy, cx + 1].item() == pytest.approx(math.exp(-1 / (2 * sigma**2)))
        assert heat[CAR_CHANNEL, cy - radius, cx - radius].item() == pytest.approx(
            math.exp(-2 * radius**2 / (2 * sigma**2))
        )
    assert all(torch.count_nonzero(targets.centers[level]) == 0 for level in (2, 3, 4))


def test_center_is_the_center_of_mass_not_the_box_center() -> None:
    ids = np.zeros((256, 256), dtype=np.int64)
    ids[16:112, 16:48] = 26001  # an L: tall bar plus a foot to the right
    ids[80:112, 48:112] = 26001
    rows, cols = np.nonzero(ids)
    center = cols.mean(), rows.mean()  # (x, y) = (48.1, 75.2) here, box center (63.5, 63.5)
    targets = build_targets(ids, TABLE)
    assert targets.thing_levels[0].tolist() == [True, True, False, False, False]  # sqrt(96 * 96) = 96
    peak = torch.nonzero(targets.centers[0][CAR_CHANNEL] == 1.0).tolist()
    assert peak == [[int(center[1] // 8), int(center[0] // 8)]]


def test_scale_ranges_overlap_as_in_the_cityscapes_fork() -> None:
    ids = np.zeros((512, 512), dtype=np.int64)
    ids[0:200, 0:200] = 26001  # sqrt(area) 200: levels (64, 256) and (128, 512)
    ids[450, 100] = 26002  # one pixel: sqrt(area) 1 -> level (1, 128) only
    ids[300:428, 300:428] = 26003  # sqrt(area) 128: both ends inclusive -> (1, 128), (64, 256), (128, 512)
    targets = build_targets(ids, TABLE)
    assert targets.thing_levels.tolist() == [
        [False, True, True, False, False],
        [True, False, False, False, False],
        [True, True, True, False, False],
    ]


def test_masks_are_cell_fractions_and_depth_means_use_valid_pixels() -> None:
    ids = square_map(top=42, left=102, side=8)  # offset by 2 px: edge cells of the stride-4 grid half covered
    depth = np.zeros(ids.shape, dtype=np.float32)
    depth[42:46, 102:110] = 10.0  # 32 px at 10 m
    depth[46:48, 102:110] = 40.0  # 16 px at 40 m; the other 16 px of the car have no depth
    depth[0:10, 0:10] = 99.0  # outside the car: irrelevant
    targets = build_targets(ids, TABLE, depth)
    mask = targets.thing_masks[0]
    assert mask.shape == (64, 96)
    assert mask.sum().item() * 16 == pytest.approx(64)  # area preserved
    assert mask[10, 25].item() == 0.25  # rows 40..43 x cols 100..103: rows 42-43, cols 102-103 inside
    assert mask[11, 26].item() == 1.0  # rows 44..47 x cols 104..107: fully inside
    assert mask[10, 26].item() == 0.5
    assert targets.depth_means.tolist() == pytest.approx([(32 * 10 + 16 * 40) / 48])  # 20 m


def test_stuff_fractions_below_half_are_dropped_per_level() -> None:
    ids = np.zeros((128, 128), dtype=np.int64)
    ids[6:, :] = 7000  # road from row 6: first stride-8 row 2/8 covered, stride-16 row 10/16 covered
    targets = build_targets(ids, TABLE)
    road = [s[ROAD_CHANNEL] for s in targets.stuff]
    assert road[0][0, 0].item() == 0.0  # 0.25 < 0.5 -> 0
    assert road[0][1, 0].item() == 1.0
    assert road[1][0, 0].item() == 0.625  # 10/16 kept as a soft value
    assert targets.stuff_masks[ROAD_CHANNEL, 1, 0].item() == 0.5  # rows 4..7 at stride 4: 2 of 4
    assert torch.count_nonzero(targets.stuff_masks) == targets.stuff_masks[ROAD_CHANNEL].count_nonzero()


def test_padding_crowd_and_unknown_classes() -> None:
    ids = np.full((250, 380), 7000, dtype=np.int64)
    ids[0:50, 0:50] = 26000  # car crowd: no instance
    ids[100:150, 0:50] = 1000  # ego vehicle: not an evaluation class -> void
    targets = build_targets(ids, TABLE)
    assert [tuple(c.shape) for c in targets.centers] == [(8, 32, 48), (8, 16, 24), (8, 8, 12), (8, 4, 6), (8, 2, 3)]
    assert targets.thing_masks.shape == (0, 64, 96) and targets.thing_levels.shape == (0, 5)
    assert all(torch.count_nonzero(c) == 0 for c in targets.centers)
    road = targets.stuff_masks[ROAD_CHANNEL]
    assert road[62, 0].item() == 0.5  # rows 248..251: 250 and 251 are padding (void)
    assert road[63, 0].item() == 0.0
    assert road[0, 0].item() == 0.0 and road[30, 0].item() == 0.0  # crowd car and ego vehicle: no stuff


def test_depth_at_mask_stride_averages_valid_depth_only() -> None:
    depth = torch.zeros(1, 1, 130, 8)
    depth[0, 0, 0, 0], depth[0, 0, 1, 1] = 10.0, 20.0  # cell (0, 0): two valid pixels
    depth[0, 0, 4:8, 0:4] = 5.0
    out = depth_at_mask_stride(depth)
    assert out.shape == (1, 1, 64, 32)  # padded to 256 x 128 first
    assert out[0, 0, 0, 0].item() == 15.0
    assert out[0, 0, 1, 0].item() == 5.0
    assert out[0, 0, 0, 1].item() == 0.0
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        depth_at_mask_stride(torch.zeros(130, 8))


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match=r"panoptic_ids must be \(H, W\)"):
        build_targets(np.zeros((2, 128, 128), dtype=np.int64), TABLE)
    with pytest.raises(ValueError, match="depth must match"):
        build_targets(np.zeros((128, 128), dtype=np.int64), TABLE, np.zeros((64, 64)))
    with pytest.raises(ValueError, match="one scale range per level"):
        TargetConfig(strides=(8, 16))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("targets.strides=[4,8,16,32,64]", "strides must be the network's head-level strides [8, 16, 32, 64, 128]"),
        ("targets.mask_stride=8", "mask_stride must be the network's feature stride 4, got 8"),
    ],
)
def test_target_geometry_overrides_are_checked_against_the_network_at_load(override: str, message: str) -> None:
    from depth_panoptic_ros.training.config import load_train_config

    config = Path(__file__).resolve().parents[1] / "config" / "train_synthetic.yaml"
    with pytest.raises(ValueError, match=re.escape(f"config.targets: {message}")):
        load_train_config(config, [override])
    assert load_train_config(config, ["targets.strides=[8,16,32,64,128]"]).targets.strides == (8, 16, 32, 64, 128)
