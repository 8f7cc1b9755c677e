"""Photometric (camera-appearance) augmentation: off means untouched, each term checked by hand or by property."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depth_panoptic_ros.data.augment import AugmentConfig, augment
from depth_panoptic_ros.data.photometric import PhotometricConfig, photometric
from depth_panoptic_ros.data.sample import Sample


def image(height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_off_returns_the_image_and_draws_nothing() -> None:
    rng = np.random.default_rng(3)
    rgb = image()
    assert photometric(rgb, PhotometricConfig(), rng) is rgb
    assert rng.random() == np.random.default_rng(3).random()


def test_brightness_and_white_balance_are_per_channel_gains() -> None:
    rgb = image()
    config = PhotometricConfig(brightness=0.3, white_balance=0.2)
    out = photometric(rgb, config, np.random.default_rng(5))
    twin = np.random.default_rng(5)
    gain = twin.uniform(0.7, 1.3) * twin.uniform(0.8, 1.2, 3)
    expected = [[[min(255, round(v / 255 * gain[c] * 255)) for c, v in enumerate(px)] for px in row] for row in rgb]
    np.testing.assert_allclose(out, np.array(expected), atol=1)  # float32 rounding at .5


def test_depth_only_images_are_flat() -> None:
    config = PhotometricConfig(depth_only=1.0, flat_color=(94.2, 92.8, 84.5))
    out = photometric(image(), config, np.random.default_rng())
    assert out.dtype == np.uint8 and (out == np.array([94, 93, 84], np.uint8)).all()


def test_gray_stays_gray_and_tone_changes_keep_the_order_of_intensities() -> None:
    ramp = np.repeat(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], 3, axis=2).repeat(4, axis=0)
    config = PhotometricConfig(brightness=0.4, contrast=0.4, saturation=0.5, gamma=1.0)
    for seed in range(10):
        out = photometric(ramp, config, np.random.default_rng(seed))
        assert (out == out[..., :1]).all()  # no white balance: gray in, gray out
        assert (np.diff(out[0, :, 0].astype(int)) >= 0).all()  # monotonic tone curve


def test_noise_and_blur_stay_within_their_ranges() -> None:
    flat = np.full((200, 200, 3), 128, np.uint8)
    noisy = photometric(flat, PhotometricConfig(noise_std=8.0), np.random.default_rng(1)).astype(float)
    assert 0 < noisy.std() <= 8.5 and abs(noisy.mean() - 128) < 0.5
    edge = np.zeros((20, 40, 3), np.uint8)
    edge[:, 20:] = 255
    blurred = photometric(edge, PhotometricConfig(blur_sigma=3.0), np.random.default_rng(2))
    twin = np.random.default_rng(2)
    twin.uniform(1, 1), twin.uniform(1, 1, 3)  # the gains, drawn even when their ranges are 0
    sigma = twin.uniform(0, 3.0)
    assert sigma > 1  # this seed blurs visibly
    expected = np.rint(cv2.GaussianBlur(edge.astype(np.float32), (0, 0), sigma))
    np.testing.assert_allclose(blurred, expected, atol=1)
    assert 0 < blurred[0, 19, 0] < 128 < blurred[0, 20, 0] < 255


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"brightness": 1.0}, "brightness"), ({"gamma": -1.0}, "gamma"), ({"depth_only": 2.0}, "probability")],
)
def test_bad_ranges_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PhotometricConfig(**kwargs)


def test_augment_changes_only_the_image() -> None:
    rng = np.random.default_rng(0)
    sample = Sample(
        "s",
        image(40, 60),
        np.where(rng.random((40, 60)) < 0.1, 10.0, 0.0).astype(np.float32),
        rng.uniform(2, 50, (40, 60)).astype(np.float32),
        rng.integers(7000, 7003, (40, 60)).astype(np.int32),
        None,
    )
    plain = AugmentConfig(crop_size=(32, 48))
    changed = AugmentConfig(crop_size=(32, 48), photometric=PhotometricConfig(brightness=0.5, noise_std=5.0))
    a, b = augment(sample, plain, np.random.default_rng(9)), augment(sample, changed, np.random.default_rng(9))
    for name in ("sparse", "depth", "panoptic"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.rgb, b.rgb)


def test_train_config_reads_the_photometric_section() -> None:
    from depth_panoptic_ros.training.config import load_train_config

    config = load_train_config("config/train_synthetic.yaml", ["augment.photometric.brightness=0.25"])
    assert config.augment.photometric == PhotometricConfig(brightness=0.25)
