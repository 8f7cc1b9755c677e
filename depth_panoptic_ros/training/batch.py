"""From a split's samples to training batches. Augmentation, the classical completion (the networks' initial
depth) and the Panoptic FCN targets are all computed in the data-loader workers on the CPU, so the training
device only runs the networks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.data.augment import AugmentConfig, augment
from depth_panoptic_ros.data.sample import Sample
from depth_panoptic_ros.depth.classical import CompletionConfig, complete_depth
from depth_panoptic_ros.training.distributed import AUGMENT_STREAM
from depth_panoptic_ros.training.targets import PanopticTargets, TargetConfig, build_targets


class TrainingSet(torch.utils.data.Dataset):
    """Indexed by StreamSampler's (position, index): sample ``index`` augmented with randomness seeded by
    ``position``, plus its classical completion."""

    def __init__(
        self, samples: Sequence[Sample], augment: AugmentConfig, completion: CompletionConfig, seed: int
    ) -> None:
        self.samples, self.augment, self.completion, self.seed = samples, augment, completion, seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Sample, np.ndarray]:
        position, index = key
        rng = np.random.default_rng([self.seed, AUGMENT_STREAM, position])
        sample = augment(self.samples[index], self.augment, rng)
        return sample, complete_depth(sample.sparse, sample.rgb, self.completion)


@dataclass
class Batch:
    """rgb (B, 3, H, W) uint8; sparse, init_depth (classical completion) and ground-truth depth (B, 1, H, W)
    meters, 0 = none; targets one per image, None for data without panoptic labels or when nothing trains on them."""

    rgb: torch.Tensor
    sparse: torch.Tensor
    init_depth: torch.Tensor
    depth: torch.Tensor
    targets: list[PanopticTargets] | None

    def to(self, device: torch.device) -> Batch:
        targets = None if self.targets is None else [t.to(device) for t in self.targets]
        move = [t.to(device) for t in (self.rgb, self.sparse, self.init_depth, self.depth)]
        return Batch(*move, targets)


@dataclass(frozen=True)
class Collate:
    """The data loader's collate_fn (a picklable object, so workers can run it)."""

    class_table: ClassTable
    targets: TargetConfig
    build_targets: bool = True  # False when no panoptic network trains: the targets would go unused

    def __call__(self, items: list[tuple[Sample, np.ndarray]]) -> Batch:
        samples = [sample for sample, _ in items]
        labeled = [s.panoptic is not None for s in samples]
        if any(labeled) and not all(labeled):
            raise ValueError("a batch mixes samples with and without panoptic labels")

        def stack(arrays: list[np.ndarray]) -> torch.Tensor:
            return torch.from_numpy(np.stack(arrays))

        targets = None
        if all(labeled) and self.build_targets:
            targets = [build_targets(s.panoptic, self.class_table, s.depth, self.targets) for s in samples]
        return Batch(
            rgb=stack([s.rgb for s in samples]).permute(0, 3, 1, 2).contiguous(),
            sparse=stack([s.sparse for s in samples])[:, None],
            init_depth=stack([init for _, init in items])[:, None],
            depth=stack([s.depth for s in samples])[:, None],
            targets=targets,
        )
