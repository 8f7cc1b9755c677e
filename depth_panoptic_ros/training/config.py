"""Everything a training run reads, as typed dataclasses with the published defaults (depth-aware Panoptic FCN:
ResNet-50, C_e 256, SGD 0.02 x 0.9 every 1000 iterations, batch 12 of 512 x 1024 crops, 180k iterations).

A YAML file fills these; ``key=value`` overrides (dotted keys, YAML scalars) edit the same dict first, so a typo
on the command line is rejected by name exactly like one in the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from depth_panoptic_ros import typed_config
from depth_panoptic_ros.data.augment import AugmentConfig
from depth_panoptic_ros.data.cityscapes import CityscapesData
from depth_panoptic_ros.data.kitti_depth import KittiDepthData
from depth_panoptic_ros.data.sample import Sample, SyntheticData
from depth_panoptic_ros.data.vkitti2 import VKitti2Data
from depth_panoptic_ros.device import check_amp, check_device
from depth_panoptic_ros.model import ModelConfig
from depth_panoptic_ros.pipeline import PipelineConfig
from depth_panoptic_ros.training.losses import DEPTH_LOSSES, LossWeights
from depth_panoptic_ros.training.schedule import ScheduleConfig
from depth_panoptic_ros.training.targets import TargetConfig

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class DataConfig:
    """Exactly one data set; its ``open(split)`` gives a sequence of Samples ("train" and "val" at least)."""

    synthetic: SyntheticData | None = None
    cityscapes: CityscapesData | None = None
    kitti_depth: KittiDepthData | None = None
    vkitti2: VKitti2Data | None = None

    def __post_init__(self) -> None:
        chosen = [f.name for f in fields(self) if getattr(self, f.name) is not None]
        if len(chosen) != 1:
            raise ValueError(f"data: set exactly one of {[f.name for f in fields(self)]}, got {chosen or 'none'}")

    @property
    def name(self) -> str:
        return next(f.name for f in fields(self) if getattr(self, f.name) is not None)

    @property
    def has_panoptic(self) -> bool:
        """KITTI depth completion has no labels: only the completion network can learn from it."""
        return self.kitti_depth is None

    def open(self, split: str) -> Sequence[Sample]:
        return getattr(self, self.name).open(split)


@dataclass(frozen=True)
class LossConfig:
    """L = pos * L_pos + seg * L_seg (+ depth_weight * depth loss when the completion network trains)."""

    panoptic: LossWeights = field(default_factory=LossWeights)
    depth_kind: str = "mse"
    depth_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.depth_kind not in DEPTH_LOSSES:
            raise ValueError(f"depth_kind must be one of {DEPTH_LOSSES}, got {self.depth_kind!r}")
        if self.depth_weight < 0:
            raise ValueError(f"depth_weight must be >= 0, got {self.depth_weight}")


@dataclass(frozen=True)
class OptimizerConfig:
    """grad_clip: maximum global gradient norm, None = no clipping; momentum for SGD, betas for Adam."""

    name: str = "sgd"
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer name must be one of {OPTIMIZERS}, got {self.name!r}")
        if not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ValueError(
                f"need lr > 0, weight_decay >= 0, 0 <= momentum < 1; "
                f"got {self.lr}, {self.weight_decay}, {self.momentum}"
            )
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or null, got {self.grad_clip}")


@dataclass(frozen=True)
class RunConfig:
    """batch_size is the global batch, split evenly over the processes of a distributed run.

    device "auto" = CUDA when available; amp: the precision autocast runs the networks in, on CUDA as on the CPU
    (fp32 = off; fp16 adds a gradient scaler). A step whose gradients are not finite is skipped; more than
    max_nonfinite_steps in a row end the run with an error naming the loss term. imagenet_weights: a
    torchvision ResNet state dict (.pth / .safetensors) loaded into both encoders, as the paper initialized them.
    init_model: a model .safetensors (of the same model config) whose weights start the run: fine-tuning; a
    completion network configured differently from the file's starts fresh (returning the classical depth).
    train_panoptic false: the panoptic network stays as init_model has it and does not run, so the completion
    network trains alone (e.g. for a new classical completion) without changing the segmentation.
    Intervals are in iterations; 0 switches periodic images, checkpoints or validation off.

    train_merge_head: train only the learned merge head (model.merge_head, see training.merge_head) on the
    frozen networks of init_model (the model section must describe that file, plus the head);
    merge_head_batches: K > 0 computes the frozen networks' candidates of K batches once and cycles through
    them (the networks cost ~all of an iteration); 0 = a fresh batch every iteration.
    """

    max_iters: int = 180_000
    batch_size: int = 12
    seed: int = 0
    device: str = "auto"
    amp: str = "fp32"
    max_nonfinite_steps: int = 20
    num_workers: int = 4
    imagenet_weights: str | None = None
    init_model: str | None = None
    train_completion: bool = True
    train_panoptic: bool = True
    train_merge_head: bool = False
    merge_head_batches: int = 0
    log_every: int = 20
    image_every: int = 1000
    checkpoint_every: int = 5000
    keep_checkpoints: int = 3
    val_every: int = 5000
    val_frames: int = 50

    def __post_init__(self) -> None:
        for name in ("max_iters", "batch_size", "log_every", "keep_checkpoints", "max_nonfinite_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"run.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_workers", "image_every", "checkpoint_every", "val_every", "val_frames", "merge_head_batches"):
            if getattr(self, name) < 0:
                raise ValueError(f"run.{name} must be >= 0, got {getattr(self, name)}")
        if self.imagenet_weights and self.init_model:
            raise ValueError("run.imagenet_weights and run.init_model both initialize the network: set one")
        object.__setattr__(self, "amp", check_amp(self.amp, "run.amp"))  # frozen: the canonical spelling
        if not self.train_panoptic and not self.init_model:
            raise ValueError(
                "run.train_panoptic false keeps the panoptic network as a trained model has it: set run.init_model"
            )
        if self.train_merge_head and not self.init_model:
            raise ValueError(
                "run.train_merge_head trains the head on the frozen networks of a trained model: set run.init_model"
            )
        if self.device != "auto":
            check_device(self.device, "run.device")


@dataclass(frozen=True)
class TrainConfig:
    """pipeline: the deployed per-frame path; evaluation runs through it and its classical completion gives
    the networks' initial depth during training as well."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(synthetic=SyntheticData()))
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    targets: TargetConfig = field(default_factory=TargetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        if self.run.train_merge_head and (self.model.merge_head is None or not self.data.has_panoptic):
            raise ValueError(
                "run.train_merge_head needs model.merge_head set (e.g. model.merge_head.kernel_size=5) and panoptic "
                f"labels (data set {self.data.name})"
            )
        if not self.run.train_panoptic and not self.trains_completion:
            raise ValueError("run.train_panoptic false trains the completion network alone: it needs model.completion")
        if not self.data.has_panoptic and not self.trains_completion:
            raise ValueError(
                f"data set {self.data.name} has no panoptic labels, so only the depth completion network can train: "
                "it needs model.completion set and run.train_completion true"
            )

    @property
    def trains_panoptic(self) -> bool:
        """Whether the panoptic network trains (and so runs) in this run."""
        return self.data.has_panoptic and self.run.train_panoptic and not self.run.train_merge_head

    @property
    def trains_completion(self) -> bool:
        return self.model.completion is not None and self.run.train_completion and not self.run.train_merge_head


def apply_override(data: dict[str, Any], item: str) -> None:
    """Sets ``a.b.c=value`` in a nested config dict; the value is parsed as a YAML scalar (or flow list)."""
    import yaml

    key, sep, text = item.partition("=")
    keys = key.strip().split(".")
    if not sep or not all(keys):
        raise ValueError(f"override {item!r} is not key=value with a dotted key, e.g. optimizer.lr=0.01")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"override {item!r}: the value is not valid YAML ({exc})") from exc
    node = data
    for depth, name in enumerate(keys[:-1]):
        if node.get(name) is None:
            node[name] = {}
        elif not isinstance(node[name], dict):
            raise ValueError(f"override {item!r}: {'.'.join(keys[: depth + 1])} is a value, not a section")
        node = node[name]
    node[keys[-1]] = value


def load_train_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """The config file with the overrides applied; unknown keys and invalid values raise ValueError by name."""
    data = typed_config.load_yaml(path)
    for item in overrides:
        apply_override(data, item)
    return typed_config.from_dict(TrainConfig, data, "config")
