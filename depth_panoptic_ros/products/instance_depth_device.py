"""The statistics of instance_depth.py computed where the panoptic ids already are: on the model's GPU.

Why: a GPU node has the ids on the device when the merge ends; there the per-segment counts, sums and order
statistics are a few kernels, where the host spends ~3 ms (375x1242) to ~8 ms (1024x2048) of CPU in
instance_depth_compiled.py (BENCHMARKS.md, "Geometry and products per frame"). Only the depth goes up and only
the table (a few values per segment) comes back; the ids are copied down anyway, for publishing.

Same values as the compiled kernel: the same pixels (finite depth > 0, void skipped), each point's float32
products ray * z, and numpy's 'linear' quantiles at the same positions (the segment's offset among all
segments' valid depths plus q (count - 1), in float64), selected from one sort of (segment, depth) keys. The
sums are float64 like the kernel's but not added in raster order (index_add), so a centroid can differ from
the host's in the last bit of its float32 value.
"""

from __future__ import annotations

import numpy as np
import torch

from depth_panoptic_ros.geometry.backproject import pixel_rays
from depth_panoptic_ros.geometry.camera import CameraModel


@torch.inference_mode()
def device_segment_statistics(
    ids: torch.Tensor, depth: np.ndarray, camera: CameraModel, segments: np.ndarray, skip: int, quantiles: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count (N,) int64, sums (N, 3) float64 x, y, z, ranked (Q, N) float32; NaN without valid pixels) of the
    segments ``segments`` (sorted, all ids of ``ids``) over the pixels of ``depth`` with finite depth > 0, as
    instance_depth_compiled.segment_statistics returns them. ``ids``: (H, W) integer tensor on any device;
    segment ``skip`` (void; -1 for none) counts nothing."""
    device = ids.device
    width = ids.shape[1]

    def up(array: np.ndarray) -> torch.Tensor:  # the rays are read-only (shared): only such arrays are copied
        return torch.from_numpy(np.require(array, np.float32, ("C", "W"))).to(device)

    z = up(depth).flatten()
    segment = torch.searchsorted(torch.as_tensor(segments, dtype=torch.int64, device=device), ids.flatten().long())
    valid = (z > 0) & (z < torch.inf)
    if skip >= 0:
        valid &= segment != skip
    pixel = torch.nonzero(valid).squeeze(1)
    k, z = segment[pixel], z[pixel]
    ray_x, ray_y = pixel_rays(camera)
    row, col = pixel // width, pixel % width
    if ray_x.shape[0] == 1:  # no skew: one row of rays for all rows
        x = up(ray_x[0])[col] * z
    else:
        x = up(ray_x)[row, col] * z
    y = up(ray_y[:, 0])[row] * z
    n = len(segments)
    sums = torch.zeros((n, 3), dtype=torch.float64, device=device)
    sums.index_add_(0, k, torch.stack((x, y, z), dim=1).to(torch.float64))
    count = torch.bincount(k, minlength=n)
    # Positive floats order as their bit patterns: one sort of segment * 2^32 + bits groups and orders them.
    ordered = z[torch.argsort(k * (1 << 32) + z.view(torch.int32).to(torch.int64))]
    count_host = count.cpu().numpy()
    start = np.cumsum(count_host) - count_host
    position = start[None, :] + quantiles[:, None] * (count_host - 1)  # float64, the kernel's positions
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, start + count_host - 1)
    has = count_host > 0
    picked = ordered[torch.as_tensor(np.concatenate([below[:, has], above[:, has]], axis=1), device=device)]
    low, high = np.split(picked.cpu().numpy().astype(np.float64), 2, axis=1)
    ranked = np.full((len(quantiles), n), np.nan, np.float32)
    ranked[:, has] = low + (position[:, has] - below[:, has]) * (high - low)
    return count_host.astype(np.int64), sums.cpu().numpy(), ranked
