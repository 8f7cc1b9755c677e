"""Scale / crop / flip augmentation, checked by hand on tiny samples."""

from __future__ import annotations

import numpy as np
import pytest

from depth_panoptic_ros.data.augment import (
    AugmentConfig,
    augment,
    crop_sample,
    flip_sample,
    resize_sparse_depth,
    scale_sample,
)
from depth_panoptic_ros.data.sample import Sample
from depth_panoptic_ros.geometry.camera import CameraModel


def _sample(height: int, width: int) -> Sample:
    rgb = np.arange(height * width * 3, dtype=np.uint8).reshape(height, width, 3)
    depth = (10 + np.arange(height * width, dtype=np.float32)).reshape(height, width)
    panoptic = (26001 + np.arange(height * width, dtype=np.int32)).reshape(height, width)
    camera = CameraModel.from_matrices(
        width, height, np.array([[100.0, 0, width / 2], [0, 100, height / 2], [0, 0, 1]])
    )
    return Sample("tiny", rgb, np.zeros((height, width), np.float32), depth, panoptic, camera)


def test_zoom_in_by_two_repeats_labels_halves_depth_and_moves_points_to_scaled_centers() -> None:
    sample = _sample(2, 3)
    sample.sparse[0, 1] = 8.0
    sample.sparse[1, 2] = 20.0
    out = scale_sample(sample, 2.0)
    assert out.rgb.shape == (4, 6, 3) and out.camera is None
    np.testing.assert_array_equal(out.panoptic, np.kron(sample.panoptic, np.ones((2, 2), np.int32)))
    np.testing.assert_array_equal(out.depth, np.kron(sample.depth, np.ones((2, 2), np.float32)) / 2)
    # pixel center (r, c) -> floor(2 * (r + 0.5)), floor(2 * (c + 0.5)): (0, 1) -> (1, 3), (1, 2) -> (3, 5)
    expected = np.zeros((4, 6), np.float32)
    expected[1, 3], expected[3, 5] = 4.0, 10.0
    np.testing.assert_array_equal(out.sparse, expected)


def test_zoom_out_by_two_keeps_the_nearest_point_of_each_block_and_doubles_depth() -> None:
    sample = _sample(4, 4)
    sample.sparse[0, 0], sample.sparse[1, 1] = 9.0, 6.0  # block (0, 0): the nearer point wins
    sample.sparse[2, 3] = 5.0  # block (1, 1): a single point
    out = scale_sample(sample, 0.5)
    np.testing.assert_array_equal(out.sparse, np.array([[12.0, 0.0], [0.0, 10.0]], np.float32))
    # nearest neighbor at the block centers' pixels (1, 1), (1, 3), (3, 1), (3, 3)
    np.testing.assert_array_equal(out.panoptic, sample.panoptic[1::2, 1::2])
    np.testing.assert_array_equal(out.depth, sample.depth[1::2, 1::2] * 2)


@pytest.mark.parametrize("shape", [(7, 11), (12, 5)])
@pytest.mark.parametrize("size", [(3, 4), (5, 9), (14, 23)])
def test_sparse_resize_matches_a_per_pixel_transcription(shape: tuple[int, int], size: tuple[int, int]) -> None:
    rng = np.random.default_rng(3)
    depth = np.where(rng.random(shape) < 0.3, rng.uniform(1, 50, shape), 0).astype(np.float32)
    out = resize_sparse_depth(depth, *size)
    expected = np.full(size, np.inf)
    for r, c in zip(*np.nonzero(depth), strict=True):  # each point to the pixel of its scaled center, nearest wins
        target = int(size[0] / shape[0] * (r + 0.5)), int(size[1] / shape[1] * (c + 0.5))
        expected[target] = min(expected[target], depth[r, c])
    np.testing.assert_array_equal(out, np.where(np.isfinite(expected), expected, 0).astype(np.float32))


def test_flip_mirrors_every_map() -> None:
    sample = _sample(2, 3)
    out = flip_sample(sample)
    np.testing.assert_array_equal(out.panoptic, [[26003, 26002, 26001], [26006, 26005, 26004]])
    np.testing.assert_array_equal(out.depth, [[12, 11, 10], [15, 14, 13]])
    np.testing.assert_array_equal(out.rgb[0, 0], sample.rgb[0, 2])


def test_crop_pads_outside_the_image_with_black_void_and_no_depth() -> None:
    sample = _sample(2, 3)
    out = crop_sample(sample, 1, 1, 2, 3)
    np.testing.assert_array_equal(out.panoptic, [[26005, 26006, 0], [0, 0, 0]])
    np.testing.assert_array_equal(out.depth, [[14, 15, 0], [0, 0, 0]])
    assert not out.rgb[1].any() and not out.rgb[0, 2].any()


def test_augment_crops_to_size_and_invalidates_depth_out_of_range() -> None:
    sample = _sample(6, 8)
    sample.sparse[:] = 24.0
    config = AugmentConfig(scale_range=(2.0, 2.0), crop_size=(4, 5), flip=False, min_depth=6.0, max_depth=14.0)
    out = augment(sample, config, np.random.default_rng(0))
    assert out.rgb.shape == (4, 5, 3) and out.panoptic.shape == (4, 5)
    valid = out.depth > 0
    assert np.all((out.depth[valid] >= 6) & (out.depth[valid] <= 14)) and not np.all(valid)
    assert np.all((out.sparse == 12.0) | (out.sparse == 0)) and np.any(out.sparse == 12.0)


def test_augment_is_a_function_of_its_generator() -> None:
    sample = _sample(6, 8)
    config = AugmentConfig(crop_size=(5, 5))
    first, second = (augment(sample, config, np.random.default_rng(7)) for _ in range(2))
    np.testing.assert_array_equal(first.panoptic, second.panoptic)
    np.testing.assert_array_equal(first.depth, second.depth)


def test_identity_augmentation_returns_the_sample() -> None:
    sample = _sample(4, 6)
    out = augment(sample, AugmentConfig(scale_range=(1.0, 1.0), crop_size=(4, 6), flip=False), np.random.default_rng(0))
    for name in ("rgb", "sparse", "depth", "panoptic"):
        np.testing.assert_array_equal(getattr(out, name), getattr(sample, name))


@pytest.mark.parametrize(
    "kwargs",
    [{"scale_range": (0.0, 2.0)}, {"scale_range": (2.0, 1.0)}, {"crop_size": (0, 4)}, {"min_depth": 5, "max_depth": 4}],
)
def test_invalid_config_is_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        AugmentConfig(**kwargs)
