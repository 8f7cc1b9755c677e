"""Training losses: Panoptic FCN's criterion with the depth-aware Dice for things, and the depth-completion loss.

``L = lambda_pos * L_pos + lambda_seg * L_seg``, ``L_seg`` = mean over stuff of (1 - Dice) + mean over things of
(1 - DDice) (Nguyen, Mehlretter, Rottensteiner). Normalizations follow dvlab-research/PanopticFCN: the thing
focal loss and thing Dice are divided by the number of (instance, level) assignments, the stuff Dice by the
number of (stuff class, level) pairs present, the stuff focal loss is a per-map pixel mean divided by the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from depth_panoptic_ros.panoptic.inference import region_mean_kernels
from depth_panoptic_ros.training.targets import PanopticTargets

if TYPE_CHECKING:
    from depth_panoptic_ros.panoptic.outputs import PanopticOutputs

DICE_EPS = 1e-8
GUIDE_MIN_FRACTION = 0.1  # a level cell may hold a training kernel when > 10% of it lies in the instance
DEPTH_LOSSES = ("mse", "l1", "smooth_l1")


@dataclass(frozen=True)
class LossWeights:
    """Published defaults: lambda_pos 1, lambda_seg 3 (Panoptic FCN); omega 3, d_max 500 m (depth-aware
    Dice); k = 7 training kernels per instance and level."""

    pos: float = 1.0
    seg: float = 3.0
    omega: float = 3.0
    d_max: float = 500.0
    top_k: int = 7

    def __post_init__(self) -> None:
        if self.pos < 0 or self.seg < 0 or self.omega < 0:
            raise ValueError(
                f"loss weights and omega must be >= 0, got pos {self.pos}, seg {self.seg}, omega {self.omega}"
            )
        if self.d_max <= 0:
            raise ValueError(f"d_max must be > 0 m, got {self.d_max}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none"
) -> torch.Tensor:
    """RetinaNet's focal loss on logits (torchvision / detectron2 formula); soft targets allowed; alpha < 0: off."""
    if logits.shape != targets.shape:
        raise ValueError(f"focal loss: logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ")
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return _reduce(loss, reduction)


def _dice(p: torch.Tensor, g: torch.Tensor, p_scaled: torch.Tensor) -> torch.Tensor:
    """1 - 2 sum(p g) / (sum(p_scaled^2) + sum(g^2)) per row; the one formula Dice and DDice share."""
    return 1 - 2 * (p * g).sum(-1) / ((p_scaled**2).sum(-1) + (g**2).sum(-1)).clamp(min=DICE_EPS)


def _flat_pair(pred: torch.Tensor, gt: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != gt.shape or pred.ndim < 2:
        raise ValueError(f"{what}: pred and gt must both be (N, ...), got {tuple(pred.shape)} and {tuple(gt.shape)}")
    return pred.flatten(1), gt.flatten(1)


def dice_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(N,) 1 - Dice per mask, Dice = 2 sum(p g) / (sum p^2 + sum g^2); pred probabilities (N, ...)."""
    p, g = _flat_pair(pred, gt, "dice_loss")
    return _dice(p, g, p)


def depth_aware_dice_loss(
    pred: torch.Tensor,
    gt: torch.Tensor,
    depth: torch.Tensor,
    gt_depth_mean: torch.Tensor,
    omega: float = 3.0,
    d_max: float = 500.0,
) -> torch.Tensor:
    """(N,) 1 - DDice per mask (eq. 5-7 of the depth-aware paper); pred probabilities (N, ...).

    DDice = 2 sum(p g) / (sum [p (1 + omega dbar)]^2 + sum g^2), with
    dbar_j = |d_j - d_g| / max(d_g, d_max - d_g) * p_j * (1 - g_j): false positives far from the instance's
    depth d_g cost more. depth: meters, broadcastable to pred, 0 = invalid (such pixels get no depth penalty);
    gt_depth_mean: (N,) d_g over the instance's valid pixels, 0 = unknown (no depth penalty for that mask).
    With omega = 0 the scale is exactly 1, so the result equals ``dice_loss`` bit for bit.
    """
    p, g = _flat_pair(pred, gt, "depth_aware_dice_loss")
    try:
        d = torch.broadcast_to(depth, pred.shape).flatten(1)
    except RuntimeError as exc:
        raise ValueError(f"depth {tuple(depth.shape)} does not broadcast to pred {tuple(pred.shape)}") from exc
    if gt_depth_mean.shape != (len(p),):
        raise ValueError(f"gt_depth_mean must be ({len(p)},), got {tuple(gt_depth_mean.shape)}")
    d_g = gt_depth_mean[:, None]
    penalised = (d > 0) & (d_g > 0)
    distance = torch.where(penalised, (d - d_g).abs() / torch.maximum(d_g, d_max - d_g), 0.0)
    dbar = distance * p * (1 - g)
    return _dice(p, g, p * (1 + omega * dbar))


def depth_completion_loss(pred: torch.Tensor, gt: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Mean loss over pixels with valid ground truth (> 0) only; zero (still in the graph) when there is none."""
    if pred.shape != gt.shape:
        raise ValueError(f"depth loss: pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ")
    if kind not in DEPTH_LOSSES:
        raise ValueError(f"depth loss kind must be one of {DEPTH_LOSSES}, got {kind!r}")
    valid = gt > 0
    if not valid.any():
        return pred.sum() * 0.0
    estimate, truth = pred[valid], gt[valid]
    if kind == "mse":
        return F.mse_loss(estimate, truth)
    if kind == "l1":
        return F.l1_loss(estimate, truth)
    return F.smooth_l1_loss(estimate, truth)


def _check_shapes(
    outputs: PanopticOutputs, targets: Sequence[PanopticTargets], depth_stride4: torch.Tensor | None
) -> None:
    batch, _, height, width = outputs.features.shape
    if len(targets) != batch:
        raise ValueError(f"one PanopticTargets per image needed: batch {batch}, got {len(targets)}")
    if depth_stride4 is not None and depth_stride4.shape != (batch, 1, height, width):
        raise ValueError(f"depth_stride4 must be {(batch, 1, height, width)}, got {tuple(depth_stride4.shape)}")
    for b, t in enumerate(targets):
        if len(t.centers) != len(outputs.centers):
            raise ValueError(f"image {b}: targets have {len(t.centers)} levels, outputs {len(outputs.centers)}")
        checks = [("features", (height, width), t.stuff_masks.shape[1:])]
        for level in range(len(outputs.centers)):
            checks.append((f"centers[{level}]", outputs.centers[level].shape[1:], t.centers[level].shape))
            checks.append((f"stuff[{level}]", outputs.stuff[level].shape[1:], t.stuff[level].shape))
        for name, got, expected in checks:
            if tuple(got) != tuple(expected):
                raise ValueError(
                    f"image {b}: outputs.{name} is {tuple(got)} per image but its target is {tuple(expected)} "
                    "(targets must be built for the network's padded size and class table)"
                )


def _thing_kernels(
    centers: torch.Tensor, kernels: torch.Tensor, masks: torch.Tensor, channels: torch.Tensor, top_k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best-scoring kernel positions inside each instance at one level: kernels (n, k, C), scores (n, k).

    Candidates are cells more than 10% covered by the instance (the reference's guide threshold); their score is
    the predicted center probability of the instance's class. Scores stay in the graph, as in the reference.
    """
    size = centers.shape[-2:]
    guide = F.adaptive_avg_pool2d(masks[None], size)[0] > GUIDE_MIN_FRACTION
    scores = (torch.sigmoid(centers[channels]) * guide).flatten(1)
    values, index = scores.topk(min(top_k, scores.shape[1]), dim=1)
    return kernels.flatten(1)[:, index].permute(1, 2, 0), values


def _thing_seg_loss(
    outputs: PanopticOutputs, b: int, t: PanopticTargets, depth: torch.Tensor | None, weights: LossWeights
) -> tuple[torch.Tensor, int]:
    """Image b: sum over (instance, level) assignments of the score-weighted (D)Dice losses of its k kernels."""
    picked = []
    for level, assigned in enumerate(t.thing_levels.T):
        instance = torch.nonzero(assigned, as_tuple=True)[0]
        if len(instance):
            kernels, scores = _thing_kernels(
                outputs.centers[level][b],
                outputs.kernels[level][b],
                t.thing_masks[instance],
                t.thing_channels[instance],
                weights.top_k,
            )
            picked.append((kernels, scores, instance))
    if not picked:
        return outputs.features.new_zeros(()), 0
    kernels, scores, instance = (torch.cat(parts) for parts in zip(*picked, strict=True))
    n, k = scores.shape
    masks = torch.sigmoid(torch.einsum("nkc,chw->nkhw", kernels, outputs.features[b])).flatten(0, 1)
    gt = t.thing_masks[instance].repeat_interleave(k, dim=0)
    if depth is None:
        losses = dice_loss(masks, gt)
    else:
        d_g = t.depth_means[instance].repeat_interleave(k)
        losses = depth_aware_dice_loss(masks, gt, depth, d_g, weights.omega, weights.d_max)
    share = scores / scores.sum(1, keepdim=True).clamp(min=DICE_EPS)
    return (losses.reshape(n, k) * share).sum(), n


def _stuff_seg_loss(outputs: PanopticOutputs, b: int, t: PanopticTargets) -> tuple[torch.Tensor, int]:
    """Image b: sum over (stuff class, level) pairs present of 1 - Dice, the kernel being the kernel map's mean
    over the class region weighted by the level's stuff target (as inference averages over predicted regions)."""
    kernels, classes = [], []
    for level, region in enumerate(t.stuff):
        present = torch.nonzero(region.flatten(1).sum(1) > 0, as_tuple=True)[0]
        kernels.append(region_mean_kernels(outputs.kernels[level][b], region[present]))
        classes.append(present)
    classes = torch.cat(classes)
    masks = torch.sigmoid(torch.einsum("nc,chw->nhw", torch.cat(kernels), outputs.features[b]))
    return dice_loss(masks, t.stuff_masks[classes]).sum(), len(classes)


def panoptic_criterion(
    outputs: PanopticOutputs,
    targets: Sequence[PanopticTargets],
    depth_stride4: torch.Tensor | None,
    weights: LossWeights | None = None,
) -> dict[str, torch.Tensor]:
    """Weighted loss terms ``pos_thing``, ``pos_stuff``, ``seg_thing``, ``seg_stuff``; the total is their sum.

    depth_stride4: (B, 1, H/4, W/4) meters on the feature grid (``targets.depth_at_mask_stride``), 0 = invalid;
    None trains things with plain Dice (RGB-only mode).
    """
    weights = weights or LossWeights()
    targets = [t.to(outputs.features.device) for t in targets]
    _check_shapes(outputs, targets, depth_stride4)
    pos_thing = pos_stuff = seg_thing = seg_stuff = outputs.features.new_zeros(())
    for level, (centers, stuff) in enumerate(zip(outputs.centers, outputs.stuff, strict=True)):
        center_targets = torch.stack([t.centers[level] for t in targets])
        stuff_targets = torch.stack([t.stuff[level] for t in targets])
        pos_thing = pos_thing + sigmoid_focal_loss(centers, center_targets, reduction="sum")
        pos_stuff = pos_stuff + sigmoid_focal_loss(stuff, stuff_targets).flatten(2).mean(2).sum()
    n_things = n_stuff = 0
    for b, t in enumerate(targets):
        depth = None if depth_stride4 is None else depth_stride4[b, 0]
        loss, count = _thing_seg_loss(outputs, b, t, depth, weights)
        seg_thing, n_things = seg_thing + loss, n_things + count
        loss, count = _stuff_seg_loss(outputs, b, t)
        seg_stuff, n_stuff = seg_stuff + loss, n_stuff + count
    return {
        "pos_thing": weights.pos * pos_thing / max(n_things, 1),
        "pos_stuff": weights.pos * pos_stuff / len(targets),
        "seg_thing": weights.seg * seg_thing / max(n_things, 1),
        "seg_stuff": weights.seg * seg_stuff / max(n_stuff, 1),
    }
