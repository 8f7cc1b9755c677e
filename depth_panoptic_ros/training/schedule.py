"""Learning-rate schedules as a pure function of the iteration, so that resuming needs nothing but the iteration.

"step" is the depth-aware paper's schedule (x 0.9 every 1000 iterations), "poly" detectron2's / DeepLab's
(1 - t / T)^power; either may start with detectron2's linear warm-up from warmup_factor * lr.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

POLICIES = ("step", "poly")


@dataclass(frozen=True)
class ScheduleConfig:
    policy: str = "step"
    step_size: int = 1000
    gamma: float = 0.9
    power: float = 0.9
    warmup_iters: int = 0
    warmup_factor: float = 0.001

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"schedule policy must be one of {POLICIES}, got {self.policy!r}")
        if self.step_size < 1 or not 0 < self.gamma <= 1 or self.power < 0:
            raise ValueError(
                f"need step_size >= 1, 0 < gamma <= 1, power >= 0; got {self.step_size}, {self.gamma}, {self.power}"
            )
        if self.warmup_iters < 0 or not 0 < self.warmup_factor <= 1:
            raise ValueError(
                f"need warmup_iters >= 0 and 0 < warmup_factor <= 1, got {self.warmup_iters}, {self.warmup_factor}"
            )


def lr_factor(config: ScheduleConfig, max_iters: int, iteration: int) -> float:
    """Multiplier of the base learning rate at ``iteration`` (0-based) of a ``max_iters`` run."""
    if config.policy == "step":
        factor = config.gamma ** (iteration // config.step_size)
    else:
        factor = max(1.0 - iteration / max_iters, 0.0) ** config.power
    if iteration < config.warmup_iters:
        alpha = iteration / config.warmup_iters
        factor *= config.warmup_factor * (1 - alpha) + alpha
    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: ScheduleConfig, max_iters: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per iteration; its state_dict (last_epoch = iterations done) goes into checkpoints."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, partial(lr_factor, config, max_iters))
