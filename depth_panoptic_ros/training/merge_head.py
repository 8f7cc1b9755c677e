"""Training the learned merge head (merge ``learned``) on top of a trained model whose networks stay frozen.

The head learns from the candidates the frozen network really produces: each image's thing candidates (on
the stride-4 grid, as at inference) are matched one-to-one to ground-truth instances of their class in score
order (best IoU, at least MATCH_IOU); a matched candidate learns its instance's mask, an unmatched one (a
duplicate, a false positive, a merge of two instances that overlaps neither enough) learns the empty mask,
so that it drops out of the per-pixel competition. Loss: binary cross-entropy summed over each candidate's
pixels and divided by its footprint (cells where it or its target exceed 0.5, so that small and large objects
weigh alike), averaged over candidates; plus the depth-aware Dice of the matched ones (the package's thing
loss, so that a mask spilling onto a look-alike at another depth costs more).

The frozen networks dominate the cost of an iteration (the head has ~8 k parameters), so with
run.merge_head_batches = K the examples of the first K batches are computed once and then cycled through.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from depth_panoptic_ros.model import DepthPanopticModel
from depth_panoptic_ros.panoptic.inference import Candidates
from depth_panoptic_ros.panoptic.merge_head import context_maps
from depth_panoptic_ros.training.batch import Batch
from depth_panoptic_ros.training.config import TrainConfig
from depth_panoptic_ros.training.losses import LossWeights, depth_aware_dice_loss
from depth_panoptic_ros.training.targets import depth_at_mask_stride

MATCH_IOU = 0.3  # below PQ's 0.5 on purpose: a poor mask of a real instance should learn to fit it, not vanish


def match_candidates(
    masks: torch.Tensor, channels: torch.Tensor, gt_masks: torch.Tensor, gt_channels: torch.Tensor
) -> torch.Tensor:
    """Ground-truth index per candidate (-1: none). Candidates (N, h, w) probabilities in decreasing score
    order, ground truth (G, h, w) cell fractions; each instance goes to at most one candidate."""
    pred = (masks > 0.5).flatten(1).float()
    gt = (gt_masks > 0.5).flatten(1).float()
    inter = pred @ gt.T
    union = pred.sum(1, keepdim=True) + gt.sum(1) - inter
    iou = torch.where((channels[:, None] == gt_channels[None, :]) & (union > 0), inter / union.clamp(min=1), 0.0)
    match = torch.full((len(masks),), -1, dtype=torch.long, device=masks.device)
    taken = torch.zeros(len(gt_masks), dtype=torch.bool, device=masks.device)
    for index in range(len(masks)):  # greedy in score order, over candidates (tens), never pixels
        best, gt_index = iou[index].masked_fill(taken, 0.0).max(0) if len(gt_masks) else (0.0, -1)
        if float(best) >= MATCH_IOU:
            match[index], taken[gt_index] = gt_index, True
    return match


@dataclass
class HeadExample:
    """One image as the head trains on it: the frozen networks' candidates and context on the stride-4 grid,
    and the ground truth (instance masks and channels, their mean depths, the depth on that grid)."""

    found: Candidates
    context: torch.Tensor
    gt_masks: torch.Tensor
    gt_channels: torch.Tensor
    gt_depth_means: torch.Tensor
    gt_depth: torch.Tensor


@torch.no_grad()
def head_examples(core: DepthPanopticModel, batch: Batch, config: TrainConfig, amp: torch.dtype | None) -> list:
    """The frozen networks on a batch (as at inference: eval mode, no gradients) -> one HeadExample per image."""
    core.eval()
    device_type = batch.rgb.device.type
    with torch.autocast(device_type, dtype=amp, enabled=amp is not None):
        dense, outputs = core(core.normalize_rgb(batch.rgb), batch.sparse, batch.init_depth)
    features = outputs.features.float()
    grid_depth = core.mask_grid_depth(dense.float(), features)
    gt_depth = depth_at_mask_stride(batch.depth, config.targets)
    table = core.class_table
    examples = []
    for b, target in enumerate(batch.targets):
        found = core.inference.candidates(outputs.image(b), table)
        context = context_maps(
            found.thing_masks,
            found.thing_channels,
            found.stuff_masks,
            found.stuff_channels,
            grid_depth[b],
            len(table.thing_indices),
            len(table.stuff_indices),
        )
        examples.append(
            HeadExample(found, context, target.thing_masks, target.thing_channels, target.depth_means, gt_depth[b, 0])
        )
    return examples


def merge_head_loss(core: DepthPanopticModel, examples: list[HeadExample], weights: LossWeights) -> dict:
    """Loss terms of the head over a batch of examples (see the module docstring)."""
    bce, dice, candidates, matched = [], [], 0, 0
    for example in examples:
        found = example.found
        if len(found.thing_masks) == 0:
            continue
        logits = core.merge_head(found.thing_masks, found.thing_channels, example.context)
        match = match_candidates(found.thing_masks, found.thing_channels, example.gt_masks, example.gt_channels)
        gt = torch.zeros_like(logits)
        hit = match >= 0
        gt[hit] = example.gt_masks[match[hit]]
        footprint = ((found.thing_masks > 0.5) | (gt > 0.5)).flatten(1).sum(1).clamp(min=1)
        per_pixel = F.binary_cross_entropy_with_logits(logits, gt, reduction="none")
        bce.append((per_pixel.flatten(1).sum(1) / footprint).sum())
        candidates += len(logits)
        if hit.any():
            means = example.gt_depth_means[match[hit]]
            ddice = depth_aware_dice_loss(
                logits[hit].sigmoid(), gt[hit], example.gt_depth, means, weights.omega, weights.d_max
            )
            dice.append(ddice.sum())
            matched += int(hit.sum())
    zero = core.merge_head.project_bias.sum() * 0  # keeps the graph when a batch has no candidate
    return {
        "merge_bce": sum(bce, zero) / max(candidates, 1),
        "merge_dice": sum(dice, zero) / max(matched, 1),
    }
