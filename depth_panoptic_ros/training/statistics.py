"""Input statistics of a training set for the config's model.normalization (`depth-panoptic-train stats`)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from tqdm import tqdm

from depth_panoptic_ros.data.sample import Sample
from depth_panoptic_ros.depth.classical import complete_depth
from depth_panoptic_ros.training.config import TrainConfig


def normalization_statistics(samples: Iterable[Sample], config: TrainConfig) -> dict[str, list[float] | float]:
    """Per-channel RGB and valid-depth mean / std of the networks' input depth (the classical completion).

    Raises ValueError when no frame has valid input depth.
    """
    norm = config.model.normalization
    rgb_sum, rgb_squares, pixels = np.zeros(3), np.zeros(3), 0
    depth_sum = depth_squares = depth_pixels = 0.0
    for sample in tqdm(samples, desc="statistics", unit="frame"):
        rgb = sample.rgb.reshape(-1, 3).astype(np.float64)
        rgb_sum += rgb.sum(axis=0)
        rgb_squares += np.einsum("ij,ij->j", rgb, rgb)
        pixels += len(rgb)
        depth = complete_depth(sample.sparse, sample.rgb, config.pipeline.completion).astype(np.float64)
        valid = depth[(depth >= norm.min_depth) & (depth <= norm.max_depth)]
        depth_sum += valid.sum()
        depth_squares += valid @ valid
        depth_pixels += valid.size
    if depth_pixels == 0:
        raise ValueError("no valid input depth in the frames: cannot compute depth statistics")
    rgb_mean = rgb_sum / pixels
    depth_mean = depth_sum / depth_pixels
    return {
        "rgb_mean": [round(float(v), 3) for v in rgb_mean],
        "rgb_std": [round(float(v), 3) for v in np.sqrt(rgb_squares / pixels - rgb_mean**2)],
        "depth_mean": round(float(depth_mean), 3),
        "depth_std": round(float(np.sqrt(depth_squares / depth_pixels - depth_mean**2)), 3),
    }
