"""Typed settings of the depth-aware Panoptic FCN and of its inference, with the published defaults.

Defaults follow the Cityscapes fork of Panoptic FCN (driving scenes) and the depth-aware paper (C_e = 256,
mean fusion). Both dataclasses round-trip through plain dicts (YAML files) and reject unknown keys by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from depth_panoptic_ros.panoptic.levels import NUM_HEAD_LEVELS
from depth_panoptic_ros.panoptic.merge import MergeConfig

BACKBONES = ("r18", "r34", "r50")
FUSIONS = ("mean", "concat", "none")
GROUP_NORM_GROUPS = 32  # detectron2's GroupNorm: every normalized head width must be a multiple of it


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _probability(name: str, value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


@dataclass(frozen=True)
class PanopticNetConfig:
    """The network: ResNet + FPN per input (color, depth), late fusion per FPN level, Panoptic FCN heads.

    fusion "none" builds no depth branch at all (RGB-only Panoptic FCN). ``head_channels`` is the width of the
    semantic FPN, position head and kernel head towers (256 in the reference); ``embed_dim`` is C_e, the
    number of channels of the encoded features and of every kernel.
    """

    backbone: str = "r50"
    fusion: str = "mean"
    num_thing_classes: int = 8
    num_stuff_classes: int = 11
    fpn_channels: int = 256
    head_channels: int = 256
    embed_dim: int = 256
    frozen_bn: bool = True

    def __post_init__(self) -> None:
        _choice("backbone", self.backbone, BACKBONES)
        _choice("fusion", self.fusion, FUSIONS)
        for name in ("num_thing_classes", "num_stuff_classes", "fpn_channels", "head_channels", "embed_dim"):
            _positive(name, getattr(self, name))
        # GroupNorm needs >= 2 values per group, and P7 is 1x1 for inputs up to 128 px: >= 2 channels per group.
        if self.head_channels % GROUP_NORM_GROUPS or self.head_channels < 2 * GROUP_NORM_GROUPS:
            raise ValueError(
                f"head_channels must be a multiple of {GROUP_NORM_GROUPS} (GroupNorm groups) and at least "
                f"{2 * GROUP_NORM_GROUPS}, got {self.head_channels}"
            )
        if not isinstance(self.frozen_bn, bool):
            raise ValueError(f"frozen_bn must be a bool, got {self.frozen_bn!r}")


@dataclass(frozen=True)
class InferenceConfig:
    """Turning network outputs into segments (Cityscapes-fork defaults; COCO used 0.05 / 100 / 0.05 / 0.9).

    center_pool_sizes: the average-pool window smoothing each level's center map (P3..P7), as the reference.
    min_thing_score: the reference's cut on rescored thing scores before the panoptic paste (its
    COMBINE.INST_THRESH), applied here so that dropped things are never upsampled to full resolution.
    min_thing_score_by_class: thing class name -> its own cut, replacing min_thing_score for that class (not in
    the reference): one model's scores need not mean the same for every class (BENCHMARKS.md, "Per-class thing
    score"). Names are checked against the model's class table when the model is built.
    merge: the paste (strategy, mask threshold, overlap, stuff area); its mask_threshold also rescores things.
    """

    center_threshold: float = 0.01
    top_k: int = 200
    center_pool_sizes: tuple[int, ...] = (3, 3, 3, 5, 5)
    stuff_threshold: float = 0.1
    similarity_threshold: float = 0.97
    min_thing_score: float = 0.2
    min_thing_score_by_class: dict[str, float] = field(default_factory=dict)
    merge: MergeConfig = field(default_factory=MergeConfig)

    def __post_init__(self) -> None:
        for name in ("center_threshold", "stuff_threshold", "min_thing_score"):
            _probability(name, getattr(self, name))
        if not isinstance(self.min_thing_score_by_class, dict) or not all(
            isinstance(name, str) for name in self.min_thing_score_by_class
        ):
            raise ValueError(
                f"min_thing_score_by_class must map class names to scores, got {self.min_thing_score_by_class!r}"
            )
        for name, score in self.min_thing_score_by_class.items():
            _probability(f"min_thing_score_by_class[{name!r}]", score)
        if not isinstance(self.similarity_threshold, int | float) or not -1.0 <= self.similarity_threshold <= 1.0:
            raise ValueError(
                f"similarity_threshold is a cosine and must lie in [-1, 1], got {self.similarity_threshold}"
            )
        _positive("top_k", self.top_k)
        if len(self.center_pool_sizes) != NUM_HEAD_LEVELS or any(
            not isinstance(k, int) or k < 1 or k % 2 == 0 for k in self.center_pool_sizes
        ):
            raise ValueError(
                f"center_pool_sizes must be {NUM_HEAD_LEVELS} odd positive ints (P3..P7), got {self.center_pool_sizes}"
            )
        if not isinstance(self.merge, MergeConfig):
            raise ValueError(f"merge must be a MergeConfig, got {type(self.merge).__name__}")

    def describe_thing_cut(self) -> str:
        """The thing score cut as a log line names it: "0.2", or "0.2 (car, truck: 0.35)" with per-class cuts."""
        groups: dict[float, list[str]] = {}
        for name, score in self.min_thing_score_by_class.items():
            groups.setdefault(score, []).append(name)
        per_class = "; ".join(f"{', '.join(names)}: {score}" for score, names in groups.items())
        return f"{self.min_thing_score} ({per_class})" if per_class else f"{self.min_thing_score}"
