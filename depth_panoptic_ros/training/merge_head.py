"""Training the learned merge head (merge ``learned``) on top of a trained model whose networks stay frozen.

The head learns from the candidates the frozen network really produces: each image's thing candidates (on
the stride-4 grid, as at inference) are matched one-to-one to ground-truth instances of their class in score
order (best IoU, at least MATCH_IOU); a matched candidate learns its instance's mask, an unmatched one (a
duplicate, a false positive, a merge of two instances that overlaps neither enough) learns the empty mask,
so that it drops out of the per-pixel competition. Loss: binary cross-entropy summed over each candidate's
pixels and divided by its footprint (cells where it or its target exceed 0.5, so that small and large objects
weigh alike), averaged over candidates; plus the depth-aware Dice of the matched ones (the package's thing
loss, so that a mask spilling onto a look-alike at another depth costs more).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from depth_panoptic_ros.model import DepthPanopticModel
from depth_panoptic_ros.panoptic.merge_head import context_maps
from depth_panoptic_ros.panoptic.outputs import PanopticOutputs
from depth_panoptic_ros.training.losses import LossWeights, depth_aware_dice_loss
from depth_panoptic_ros.training.targets import PanopticTargets

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


def merge_head_loss(
    core: DepthPanopticModel,
    outputs: PanopticOutputs,
    dense: torch.Tensor,
    targets: list[PanopticTargets],
    depth: torch.Tensor,
    weights: LossWeights,
) -> dict[str, torch.Tensor]:
    """Loss terms of the head over a batch: outputs / dense depth of the frozen networks, targets per image,
    ground-truth depth (B, 1, h, w) on the mask grid (training.targets.depth_at_mask_stride)."""
    table = core.class_table
    grid_depth = core.mask_grid_depth(dense.detach().float(), outputs.features)
    bce, dice, candidates, matched = [], [], 0, 0
    for b, target in enumerate(targets):
        with torch.no_grad():
            found = core.inference.candidates(outputs.image(b), table)
        if len(found.thing_masks) == 0:
            continue
        context = context_maps(
            found.thing_masks,
            found.thing_channels,
            found.stuff_masks,
            found.stuff_channels,
            grid_depth[b],
            len(table.thing_indices),
            len(table.stuff_indices),
        )
        logits = core.merge_head(found.thing_masks, found.thing_channels, context)
        match = match_candidates(found.thing_masks, found.thing_channels, target.thing_masks, target.thing_channels)
        gt = torch.zeros_like(logits)
        hit = match >= 0
        gt[hit] = target.thing_masks[match[hit]]
        footprint = ((found.thing_masks > 0.5) | (gt > 0.5)).flatten(1).sum(1).clamp(min=1)
        per_pixel = F.binary_cross_entropy_with_logits(logits, gt, reduction="none")
        bce.append((per_pixel.flatten(1).sum(1) / footprint).sum())
        candidates += len(logits)
        if hit.any():
            means = target.depth_means[match[hit]]
            ddice = depth_aware_dice_loss(
                logits[hit].sigmoid(), gt[hit], depth[b, 0], means, weights.omega, weights.d_max
            )
            dice.append(ddice.sum())
            matched += int(hit.sum())
    zero = core.merge_head.project_bias.sum() * 0  # keeps the graph when a batch has no candidate
    return {
        "merge_bce": sum(bce, zero) / max(candidates, 1),
        "merge_dice": sum(dice, zero) / max(matched, 1),
    }
