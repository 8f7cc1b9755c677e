"""Panoptic FCN inference: network outputs -> scored masks -> panoptic map, on the outputs' device.

Follows the reference (dvlab-research/PanopticFCN ``inference``), except that the top-k of thing centers is
taken once over all levels together instead of per level. Every step is a batched tensor operation over
candidates; no Python loop touches a mask (only the five pyramid levels are looped over). Each selection of a
data-dependent number of candidates reads one count or index list from the device (a GPU synchronization), once
for all the tensors it selects from (panoptic/sync_free.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.panoptic.config import InferenceConfig
from depth_panoptic_ros.panoptic.levels import FEATURE_STRIDE
from depth_panoptic_ros.panoptic.merge import merge_panoptic
from depth_panoptic_ros.panoptic.merge_head import MergeHead, context_maps
from depth_panoptic_ros.panoptic.outputs import PanopticOutputs
from depth_panoptic_ros.panoptic.result import PanopticResult
from depth_panoptic_ros.panoptic.sync_free import class_tensors
from depth_panoptic_ros.panoptic.thing_geometry import ThingGeometryCheck


def region_mean_kernels(kernels: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Mean kernel over each region: kernels (..., C, h, w), regions (..., K, h, w) weights -> (..., K, C).

    This is how a stuff class gets its kernel (training with ground-truth regions, inference with predicted
    ones); an empty region gives a zero kernel.
    """
    area = regions.sum((-2, -1)).clamp(min=1e-6)
    return torch.einsum("...khw,...chw->...kc", regions, kernels) / area[..., None]


def thing_candidates(
    centers: Sequence[torch.Tensor],
    kernels: Sequence[torch.Tensor],
    pool_sizes: Sequence[int],
    top_k: int,
    threshold: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Center peaks over all levels -> (kernels (N, C), thing channels (N,), scores (N,)) by decreasing score.

    Per level (centers (n_thing, h, w) logits, kernels (C, h, w)): sigmoid, averaged with its average-pooled
    self (the reference's smoothing), kept only at 3x3 local maxima; then the best ``top_k`` above
    ``threshold`` over all levels and classes, each taking the kernel at its position.
    """
    peaks, flat_kernels = [], []
    for logits, level_kernels, pool in zip(centers, kernels, pool_sizes, strict=True):
        score = logits.sigmoid()
        score = (score + F.avg_pool2d(score, pool, stride=1, padding=pool // 2)) / 2
        score = score * (F.max_pool2d(score, 3, stride=1, padding=1) == score)
        peaks.append(score.flatten(1))
        flat_kernels.append(level_kernels.flatten(1))
    peak_map = torch.cat(peaks, dim=1)  # (n_thing, P) over all levels' positions
    scores, index = peak_map.flatten().topk(min(top_k, peak_map.numel()))
    above = int((scores > threshold).sum())  # the top-k come by decreasing score: those above are a prefix
    scores, index = scores[:above], index[:above]
    positions = peak_map.shape[1]
    return torch.cat(flat_kernels, dim=1)[:, index % positions].T, index // positions, scores


def fuse_thing_kernels(
    kernels: torch.Tensor,
    classes: torch.Tensor,
    scores: torch.Tensor,
    threshold: float,
    min_scores: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge duplicate detections of one object: same class and cosine similarity >= ``threshold``.

    Inputs sorted by decreasing score. As the reference: each candidate joins the first (best) candidate it
    is similar to; a candidate similar to no better one leads a group whose kernel is the group mean and
    whose score is its own (the group maximum). A candidate whose first match was itself absorbed is dropped.
    ``min_scores`` (N,): a group whose lead scores below its entry is dropped too (which groups lead does not
    change), so that no mask is computed for it.
    """
    unit = F.normalize(kernels, dim=1, eps=1e-8)
    similar = (unit @ unit.T >= threshold) & (classes[:, None] == classes[None, :])
    similar = similar.triu() | torch.eye(len(kernels), dtype=torch.bool, device=kernels.device)
    first = similar.cumsum(dim=0) < 2  # [i, j]: no candidate before i is similar to j
    leading = first.diagonal() if min_scores is None else first.diagonal() & (scores >= min_scores)
    leads = leading.nonzero()[:, 0]
    groups = (similar & first)[leads].to(kernels.dtype)
    return groups @ kernels / groups.sum(dim=1, keepdim=True), classes[leads], scores[leads]


def stuff_kernels(
    stuff: Sequence[torch.Tensor], kernels: Sequence[torch.Tensor], threshold: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One kernel per stuff class present -> (kernels (S', C), stuff channels (S',), scores (S',)).

    Per level (stuff (n_stuff, h, w) logits, kernels (C, h, w)): each pixel goes to its most probable class;
    a class is present when its mean probability over that region exceeds ``threshold``, and its kernel is
    the region's mean kernel. Kernels and scores are then averaged over the levels where it is present.
    """
    level_kernels, level_scores = [], []
    for logits, level_kernel_map in zip(stuff, kernels, strict=True):
        prob = logits.sigmoid()
        regions = F.one_hot(prob.argmax(0), prob.shape[0]).permute(2, 0, 1).to(prob.dtype)
        level_scores.append((prob * regions).sum((1, 2)) / regions.sum((1, 2)).clamp(min=1))
        level_kernels.append(region_mean_kernels(level_kernel_map, regions))
    scores = torch.stack(level_scores)  # (L, n_stuff)
    present = (scores > threshold).to(scores.dtype)  # an empty region scores 0, never above a threshold >= 0
    count = present.sum(0)
    keep = (count > 0).nonzero()[:, 0]
    fused = (present[..., None] * torch.stack(level_kernels)).sum(0)[keep] / count[keep, None]
    return fused, keep, (present * scores).sum(0)[keep] / count[keep]


def thing_score_cuts(config: InferenceConfig, class_table: ClassTable, device: torch.device | str) -> torch.Tensor:
    """(n_thing,) the score each thing channel must reach: its class's min_thing_score_by_class entry, else
    min_thing_score. ValueError for a name that is not a thing class of ``class_table``."""
    names = tuple(class_table.names[i] for i in class_table.thing_indices)
    by_class = tuple(sorted(config.min_thing_score_by_class.items()))
    return _thing_score_cuts(names, config.min_thing_score, by_class, torch.device(device))


@lru_cache(maxsize=8)
def _thing_score_cuts(
    names: tuple[str, ...], default: float, by_class: tuple[tuple[str, float], ...], device: torch.device
) -> torch.Tensor:
    """Kept per class table, cuts and device: the same small tensor serves every frame."""
    unknown = sorted(set(dict(by_class)) - set(names))
    if unknown:
        raise ValueError(f"min_thing_score_by_class names {unknown}, not thing classes of the model: {list(names)}")
    cuts = dict(by_class)
    return torch.tensor([cuts.get(name, default) for name in names], dtype=torch.float32, device=device)


def mask_quality(probs: torch.Tensor, threshold: float) -> torch.Tensor:
    """Mean probability inside each binarized mask, (N, ...) -> (N,): the reference's rescoring factor."""
    inside = (probs > threshold).to(probs.dtype).flatten(1)
    return (probs.flatten(1) * inside).sum(1) / (inside.sum(1) + 1e-6)


@dataclass
class Candidates:
    """One image's scored masks on the stride-4 feature grid (over the padded input), before any merge.

    thing_masks (N, h, w) probabilities by decreasing score, their thing channels (N,) (ClassTable.thing_indices
    order) and rescored scores (N,); stuff_masks (S, h, w), stuff channels (S,) and scores (S,).
    """

    thing_masks: torch.Tensor
    thing_channels: torch.Tensor
    thing_scores: torch.Tensor
    stuff_masks: torch.Tensor
    stuff_channels: torch.Tensor
    stuff_scores: torch.Tensor


class PanopticInference:
    """Callable turning one image's PanopticOutputs into a PanopticResult at the network's input size.

    merge_head: the learned merge head (panoptic.merge_head) of the model, None when it has none; the merge
    ``learned`` needs it and the mask-grid depth (``depth``) of the image.
    """

    def __init__(self, config: InferenceConfig | None = None, merge_head: MergeHead | None = None) -> None:
        self.config = config or InferenceConfig()
        self.merge_head = merge_head

    @torch.inference_mode()
    def __call__(
        self,
        outputs: PanopticOutputs,
        class_table: ClassTable,
        image_size: tuple[int, int],
        depth: torch.Tensor | None = None,
        check: ThingGeometryCheck | None = None,
    ) -> PanopticResult:
        """``check``: the frame's thing geometry check (panoptic/thing_geometry.py) for the merge, None = none."""
        masks, classes, scores = self.segments(outputs, class_table, image_size, depth)
        merge = self.config.merge
        return merge_panoptic(merge.strategy, masks, classes, scores, class_table, merge, check)

    def candidates(self, outputs: PanopticOutputs, class_table: ClassTable) -> Candidates:
        """Thing and stuff candidates of one image on the feature grid (things below their class's cut dropped:
        thing_score_cuts). Not under inference mode itself, so that training the merge head can read them (under
        no_grad)."""
        _check(outputs, class_table, len(self.config.center_pool_sizes))
        cfg = self.config
        features = outputs.features[0].float()
        kernels = [k[0].float() for k in outputs.kernels]
        thing_k, thing_c, thing_s = thing_candidates(
            [c[0].float() for c in outputs.centers], kernels, cfg.center_pool_sizes, cfg.top_k, cfg.center_threshold
        )
        # The rescoring below multiplies by a mask quality of at most 1 (a mean of sigmoids), so a group whose score
        # is under its class's cut before it stays under after it: dropped before its mask is computed (on the
        # shipped model ~160 groups on a KITTI frame, of which a few reach the cuts).
        cuts = thing_score_cuts(cfg, class_table, thing_s.device)
        thing_k, thing_c, thing_s = fuse_thing_kernels(
            thing_k, thing_c, thing_s, cfg.similarity_threshold, min_scores=cuts[thing_c]
        )
        stuff_k, stuff_c, stuff_s = stuff_kernels([s[0].float() for s in outputs.stuff], kernels, cfg.stuff_threshold)

        thing_masks = torch.einsum("nc,chw->nhw", thing_k, features).sigmoid()
        thing_s = thing_s * mask_quality(thing_masks, cfg.merge.mask_threshold)
        keep = (thing_s >= cuts[thing_c]).nonzero()[:, 0]
        keep = keep[thing_s[keep].argsort(descending=True)]
        stuff_masks = torch.einsum("nc,chw->nhw", stuff_k, features).sigmoid()
        return Candidates(thing_masks[keep], thing_c[keep], thing_s[keep], stuff_masks, stuff_c, stuff_s)

    @torch.inference_mode()
    def segments(
        self,
        outputs: PanopticOutputs,
        class_table: ClassTable,
        image_size: tuple[int, int],
        depth: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masks (N, H, W) float32 probabilities at ``image_size``, class indices (N,), scores (N,): things by
        decreasing score, then stuff. ``image_size`` is the (H, W) given to the network, before its padding.
        With the merge ``learned`` the thing masks are the merge head's refinement, which reads ``depth``, the
        normalized depth on the feature grid (h, w) (DepthPanopticModel.mask_grid_depth)."""
        _check_size(outputs, image_size)
        found = self.candidates(outputs, class_table)
        thing_masks = found.thing_masks
        if self.config.merge.strategy == "learned":
            thing_masks = self.refine(found, depth, class_table)
        tables = class_tensors(class_table, thing_masks.device)
        classes = torch.cat((tables.thing_indices[found.thing_channels], tables.stuff_indices[found.stuff_channels]))
        masks = torch.cat((thing_masks, found.stuff_masks))
        height, width = image_size
        # masks as a batch of one-band images: an empty batch (nothing found) is valid, zero channels are not
        masks = F.interpolate(masks[:, None], scale_factor=FEATURE_STRIDE, mode="bilinear", align_corners=False)
        return masks[:, 0, :height, :width], classes, torch.cat((found.thing_scores, found.stuff_scores))

    def refine(self, found: Candidates, depth: torch.Tensor | None, class_table: ClassTable) -> torch.Tensor:
        """The merge head's refined thing masks (N, h, w) probabilities."""
        if self.merge_head is None:
            raise ValueError("merge 'learned' needs a model with a learned merge head; this model has none")
        grid = found.thing_masks.shape[1:]
        if depth is None or depth.shape != grid:
            got = None if depth is None else tuple(depth.shape)
            raise ValueError(f"merge 'learned' needs the depth on the feature grid {tuple(grid)}, got {got}")
        context = context_maps(
            found.thing_masks,
            found.thing_channels,
            found.stuff_masks,
            found.stuff_channels,
            depth.float(),
            len(class_table.thing_indices),
            len(class_table.stuff_indices),
        )
        return self.merge_head(found.thing_masks, found.thing_channels, context).sigmoid()


def _check(outputs: PanopticOutputs, class_table: ClassTable, num_levels: int) -> None:
    batch = outputs.features.shape[0]
    if batch != 1:
        raise ValueError(f"inference takes one image's outputs (batch 1, see PanopticOutputs.image), got batch {batch}")
    n_thing, n_stuff = len(class_table.thing_indices), len(class_table.stuff_indices)
    for name, maps, channels in (("centers", outputs.centers, n_thing), ("stuff", outputs.stuff, n_stuff)):
        if len(maps) != num_levels or any(m.shape[1] != channels for m in maps):
            got = [tuple(m.shape) for m in maps]
            raise ValueError(
                f"outputs.{name} must be {num_levels} levels of (1, {channels}, h, w) for the class table, got {got}"
            )
    embed = outputs.features.shape[1]
    if len(outputs.kernels) != num_levels or any(k.shape[1] != embed for k in outputs.kernels):
        got = [tuple(k.shape) for k in outputs.kernels]
        raise ValueError(
            f"outputs.kernels must be {num_levels} levels of (1, {embed}, h, w) like the features, got {got}"
        )


def _check_size(outputs: PanopticOutputs, image_size: tuple[int, int]) -> None:
    h, w = outputs.features.shape[-2:]
    height, width = image_size
    padded = (h * FEATURE_STRIDE, w * FEATURE_STRIDE)
    if not (0 < height <= padded[0] and 0 < width <= padded[1]):
        raise ValueError(f"image_size must be the network input size, at most the padded {padded}, got {image_size}")
