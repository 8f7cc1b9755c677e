"""Camera-appearance augmentation of the image alone: the synthetic renderer's colors are not a real camera's.

A real camera differs from the renderer in exposure, white balance, contrast, color saturation, tone curve,
focus and sensor noise; a network that has only seen one rendering keys on it. Each term below draws one
random change per image (labels and depths are untouched), and "depth only" images (the image replaced by one
flat color) make the network find things from the depth branch alone, whose input looks alike on synthetic and
real LiDAR. All terms at 0 (the default) leave the image unchanged and draw no random numbers, so that runs
without them stay reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as OpenCV's RGB -> gray


@dataclass(frozen=True)
class PhotometricConfig:
    """Ranges of the random changes; 0 = off.

    brightness b: gain in [1 - b, 1 + b]; white_balance w: per-channel gain in [1 - w, 1 + w];
    contrast c: factor in [1 - c, 1 + c] about the image mean; saturation s: factor in [1 - s, 1 + s] about
    the gray image (0 = gray); gamma g: exponent in [1 / (1 + g), 1 + g] on [0, 1] intensities;
    blur_sigma: Gaussian blur of sigma in [0, blur_sigma] px; noise_std: additive Gaussian noise of standard
    deviation in [0, noise_std] (8-bit levels); depth_only: probability of a flat image of the mean color
    ``flat_color`` (the normalization mean, so that the color branch sees zeros).
    """

    brightness: float = 0.0
    white_balance: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    gamma: float = 0.0
    blur_sigma: float = 0.0
    noise_std: float = 0.0
    depth_only: float = 0.0
    flat_color: tuple[float, float, float] = (128.0, 128.0, 128.0)

    def __post_init__(self) -> None:
        for name in ("brightness", "white_balance", "contrast", "saturation"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"photometric.{name} must lie in [0, 1), got {getattr(self, name)}")
        for name in ("gamma", "blur_sigma", "noise_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"photometric.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.depth_only <= 1:
            raise ValueError(f"photometric.depth_only is a probability, got {self.depth_only}")
        if len(self.flat_color) != 3 or not all(0 <= v <= 255 for v in self.flat_color):
            raise ValueError(f"photometric.flat_color must be 3 values in [0, 255], got {self.flat_color}")

    @property
    def active(self) -> bool:
        return any(
            getattr(self, name)
            for name in (
                "brightness",
                "white_balance",
                "contrast",
                "saturation",
                "gamma",
                "blur_sigma",
                "noise_std",
                "depth_only",
            )
        )


def photometric(rgb: np.ndarray, config: PhotometricConfig, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 RGB with the changes of ``config`` drawn from ``rng`` (a new array; the input is kept)."""
    if not config.active:
        return rgb
    if config.depth_only and rng.random() < config.depth_only:
        return np.broadcast_to(np.rint(config.flat_color).astype(np.uint8), rgb.shape).copy()
    x = rgb.astype(np.float32) * np.float32(1 / 255)
    gain = rng.uniform(1 - config.brightness, 1 + config.brightness)
    gain = gain * rng.uniform(1 - config.white_balance, 1 + config.white_balance, 3)
    x *= gain.astype(np.float32)
    if config.contrast:
        mean = np.float32(x.mean())
        x = mean + np.float32(rng.uniform(1 - config.contrast, 1 + config.contrast)) * (x - mean)
    if config.saturation:
        gray = (x @ _LUMA)[..., None]
        x = gray + np.float32(rng.uniform(1 - config.saturation, 1 + config.saturation)) * (x - gray)
    np.clip(x, 0, 1, out=x)
    if config.gamma:
        exponent = np.exp(rng.uniform(-np.log1p(config.gamma), np.log1p(config.gamma)))
        np.power(x, np.float32(exponent), out=x)
    x *= 255
    if config.blur_sigma:
        sigma = rng.uniform(0, config.blur_sigma)
        if sigma > 0.1:  # below, a 3-tap kernel is already the identity in 8 bits
            x = cv2.GaussianBlur(x, (0, 0), sigma)
    if config.noise_std:
        x += rng.normal(0, rng.uniform(0, config.noise_std), x.shape).astype(np.float32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)
