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

import numpy as np
import torch

from depth_panoptic_ros.panoptic.fragments_compiled import largest_parts, mark_dropped
from depth_panoptic_ros.products.segments import SegmentRuns


def thing_fragments(owner: torch.Tensor) -> torch.Tensor:
    """bool (H, W) on ``owner``'s device: the pixels of each instance (``owner``: int index >= 0 per pixel, -1
    where no thing is) outside its largest 8-connected part (by pixels; on a tie the part that starts first in
    raster order stays). One copy of the map to the host and the mask back on a GPU: the parts are found from the
    map's runs (fragments_compiled.py)."""
    runs = SegmentRuns.of(owner.to(torch.int32).cpu().numpy() + 1)  # 0: no thing
    keep = np.empty(len(runs.start), bool)
    if not largest_parts(runs.start, runs.length, runs.segment, runs.shape[1], runs.segments > 0, keep):
        return torch.zeros(owner.shape, dtype=torch.bool, device=owner.device)  # nothing to copy back
    fragment = np.zeros(runs.shape, bool)
    mark_dropped(runs.start, runs.length, keep, fragment.reshape(-1))
    return torch.from_numpy(fragment).to(owner.device)
