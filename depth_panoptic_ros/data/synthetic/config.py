"""What a synthetic data set is made of, validated once so that the generator can trust it."""

from __future__ import annotations

from dataclasses import dataclass, field

from depth_panoptic_ros.data.synthetic.presets import PRESETS, camera_preset


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")


@dataclass(frozen=True)
class LidarConfig:
    """A rotating LiDAR like KITTI's Velodyne HDL-64E (beams spread evenly over its elevation range)."""

    beams: int = 64
    elevation_deg: tuple[float, float] = (2.0, -24.8)  # (top beam, bottom beam)
    azimuth_step_deg: float = 0.18  # ~2000 steps per turn: ~120k rays a sweep, as KITTI's 10 Hz sweeps
    fov_deg: float = 360.0  # horizontal field centered on the forward direction; less is faster
    max_range_m: float = 120.0
    range_noise_m: float = 0.02  # standard deviation along the ray
    dropout: float = 0.05  # share of returns lost at random
    offset_m: tuple[float, float, float] = (0.0, -0.30, -0.27)  # origin in the camera frame: 0.3 m up, 0.27 m back

    def __post_init__(self) -> None:
        if self.beams < 1:
            raise ValueError(f"lidar beams must be >= 1, got {self.beams}")
        top, bottom = self.elevation_deg
        if not -90.0 < bottom < top < 90.0:
            raise ValueError(
                f"lidar elevation_deg must be (top, bottom) with -90 < bottom < top < 90, got {self.elevation_deg}"
            )
        if not 0.0 < self.azimuth_step_deg <= self.fov_deg <= 360.0:
            raise ValueError(
                f"lidar needs 0 < azimuth_step_deg <= fov_deg <= 360, got {self.azimuth_step_deg} and {self.fov_deg}"
            )
        if self.max_range_m <= 0 or self.range_noise_m < 0:
            raise ValueError(
                f"lidar max_range_m must be > 0 and range_noise_m >= 0, got {self.max_range_m}, {self.range_noise_m}"
            )
        _check_fraction("lidar dropout", self.dropout)
        if len(self.offset_m) != 3:
            raise ValueError(f"lidar offset_m must hold 3 values (x, y, z), got {self.offset_m}")


@dataclass(frozen=True)
class SyntheticConfig:
    """A reproducible synthetic data set: frame i of a config is always the same frame.

    look_alike_fraction: share of scenes with a pair of identical things (same class, color, texture, shape)
    overlapping 30-60% in the image, the farther one at least look_alike_min_gap_m behind: what a depth-aware
    loss separates. same_depth_fraction: share of scenes with such a pair side by side at the same depth, the
    case depth cannot help with. n_things: (min, max) thing instances per scene (a rider's bicycle counts).
    """

    preset: str = "kitti"
    size: tuple[int, int] | None = None  # (width, height); None = the preset's size
    seed: int = 0
    look_alike_fraction: float = 0.5
    look_alike_min_gap_m: float = 6.0
    same_depth_fraction: float = 0.25
    n_things: tuple[int, int] = (4, 12)
    stereo: bool = True
    baseline_m: float | None = None  # None = the preset rig's baseline (KITTI 0.54 m)
    lidar: bool = True
    lidar_config: LidarConfig = field(default_factory=LidarConfig)
    image_noise: float = 2.0  # standard deviation of the sensor noise, in 8-bit gray levels

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown synthetic preset {self.preset!r}; expected one of {', '.join(PRESETS)}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 16):
            raise ValueError(f"synthetic size must be (width, height) of at least 16 px each, got {self.size}")
        if self.seed < 0:
            raise ValueError(f"synthetic seed must be >= 0, got {self.seed}")
        _check_fraction("look_alike_fraction", self.look_alike_fraction)
        _check_fraction("same_depth_fraction", self.same_depth_fraction)
        if self.look_alike_min_gap_m <= 0:
            raise ValueError(f"look_alike_min_gap_m must be > 0, got {self.look_alike_min_gap_m}")
        low, high = self.n_things
        if not 0 <= low <= high:
            raise ValueError(f"n_things must be (min, max) with 0 <= min <= max, got {self.n_things}")
        if self.baseline_m is not None and self.baseline_m <= 0:
            raise ValueError(f"baseline_m must be > 0, got {self.baseline_m}")
        if self.image_noise < 0:
            raise ValueError(f"image_noise must be >= 0, got {self.image_noise}")

    @property
    def rig_baseline_m(self) -> float:
        """The stereo baseline in use: baseline_m, or the preset rig's."""
        return camera_preset(self.preset).baseline_m if self.baseline_m is None else self.baseline_m
