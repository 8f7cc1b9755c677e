"""Thing fragments: the pixels of an instance outside its largest connected part, which the merges give back.

Why: an instance is one object, but the per-pixel competition of the merges leaves stray pieces of a thing
mask wherever its probability wins elsewhere in the image (on the real KITTI object frames: streaks along walls
and vegetation, up to the image's width away). Every consumer reads an instance's extent from all its pixels
(boxes, centroids and depth statistics, the 3D cloud's instances), so such pieces turn a car into a box across
the street. Without its fragments (the merges then give those pixels to stuff as if no thing had claimed them),
the shipped model found 13 of 17-18 moderate KITTI vehicles instead of 5-8, and synthetic PQ_th rose by 1.4-1.6
points with every merge (BENCHMARKS.md, "Thing fragments"). The cost: an object that an occluder cuts in two
keeps only its larger piece. Stuff keeps all its parts: sky between branches is still sky.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from depth_panoptic_ros.panoptic.fragments_compiled import largest_parts, mark_dropped
from depth_panoptic_ros.products.segments import SegmentRuns


class ThingRuns:
    """A merge's owner map (int mask index >= 0 per pixel, -1 where no thing is) and the thing pixels given back to
    stuff (``back``, None until something is), painted run by run. The runs are found at their first use (one copy
    of the map to the host), and on a GPU ``back`` goes to the device once, whatever is given back. Painting the
    runs of a failing instance replaced a full-size lookup of the owner map (~2.4 ms at 1024x2048 on a CPU)."""

    def __init__(self, owner: torch.Tensor) -> None:
        self.owner = owner
        self.back: np.ndarray | None = None

    @cached_property
    def runs(self) -> SegmentRuns:
        return SegmentRuns.of(self.owner.to(torch.int32).cpu().numpy() + 1)  # 0: no thing

    def drop_fragments(self) -> None:
        """Gives back each instance's pixels outside its largest 8-connected part (by pixels; on a tie the part
        that starts first in raster order stays), found from the runs (fragments_compiled.py)."""
        runs = self.runs
        keep = np.empty(len(runs.start), bool)
        if largest_parts(runs.start, runs.length, runs.segment, runs.shape[1], runs.segments > 0, keep):
            self._paint(keep)

    def drop_instances(self, failing: np.ndarray) -> None:
        """Gives back every pixel of the mask indices where ``failing`` (bool, one per mask index) holds."""
        if failing.any():
            self._paint(~np.concatenate(([False], failing))[self.runs.segments][self.runs.segment])

    def given_back(self) -> torch.Tensor:
        """bool (H, W) on the owner map's device; nothing is copied when nothing was given back."""
        if self.back is None:
            return torch.zeros(self.owner.shape, dtype=torch.bool, device=self.owner.device)
        return torch.from_numpy(self.back).to(self.owner.device)

    def _paint(self, keep: np.ndarray) -> None:
        if self.back is None:
            self.back = np.zeros(self.runs.shape, bool)
        mark_dropped(self.runs.start, self.runs.length, keep, self.back.reshape(-1))
