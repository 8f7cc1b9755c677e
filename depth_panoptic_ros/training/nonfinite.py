"""Steps whose gradients are not finite are skipped; too many in a row end the run with the loss term to blame.

fp16 training with a gradient scaler skips a few steps by design while the scale settles (an overflow halves
it); a run whose loss itself has gone NaN or infinite would otherwise skip every step silently until the end.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch

_log = logging.getLogger(__name__)


class NonFiniteTrainingError(FloatingPointError):
    """Training stopped after run.max_nonfinite_steps consecutive skipped steps."""


class NonFiniteSteps:
    """Counts skipped steps (total and current streak) and raises NonFiniteTrainingError at ``limit`` in a row,
    naming the loss terms that were not finite when the streak began."""

    def __init__(self, limit: int) -> None:
        self.limit, self.total, self.streak = limit, 0, 0
        self._cause = ""

    def update(self, iteration: int, finite: bool, terms: Mapping[str, torch.Tensor]) -> None:
        """Records iteration ``iteration``; ``finite``: whether its gradients were finite (the step was taken)."""
        if finite:
            self.streak = 0
            return
        self.total += 1
        self.streak += 1
        if self.streak == 1:
            bad = [name for name, value in terms.items() if not torch.isfinite(value).all()]
            self._cause = (
                f"loss term {', '.join(repr(b) for b in bad)} went non-finite at iteration {iteration}"
                if bad
                else f"the gradients went non-finite at iteration {iteration} (every loss term was finite)"
            )
            _log.warning("iteration %d skipped: %s", iteration, self._cause)
        if self.streak >= self.limit:
            raise NonFiniteTrainingError(
                f"training stopped: {self.streak} consecutive steps skipped for non-finite gradients; {self._cause}. "
                "Try a lower optimizer.lr, optimizer.grad_clip, or run.amp=bf16 / fp32 (fp16's range is small)"
            )
