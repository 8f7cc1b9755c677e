"""Panoptic merges: scored, overlapping class masks -> one non-overlapping panoptic map.

Two published heuristics and a learned one, all computed on the masks' device:

* ``fcn`` (``combine_thing_and_stuff`` of Panoptic FCN, the method this package builds on, hence the default):
  things pasted in decreasing score order, a thing skipped when more than ``overlap_threshold`` of it is
  already taken; every free pixel takes its best stuff mask (no threshold, as in the reference); small stuff
  segments become void.
* ``degeus`` (de Geus, Meletis, Dubbelman): thing overlaps resolved per pixel by score x probability, so a
  confident instance does not swallow the boundary of a neighbor that is surer there; pixels no instance
  claims take the best stuff class only if its probability reaches ``degeus_alpha``, else stay void.
* ``learned`` (seed 003): the thing masks are first refined by the learned merge head (panoptic.merge_head,
  applied in PanopticInference before upsampling); the refined masks then compete as in ``degeus``.

Both take masks (N, H, W) of probabilities at output resolution, classes (N,) as ClassTable *indices* and
scores (N,) in [0, 1], with at most one mask per stuff class. On a GPU a merge makes the host wait for the device
three times (panoptic/sync_free.py): for its inputs' validation with the paste order, for the owner map of the
fragment step (and once more to copy the fragments back, when there are any) and for the result; the thing
geometry check adds its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.panoptic.fragments import ThingRuns
from depth_panoptic_ros.panoptic.result import PanopticResult
from depth_panoptic_ros.panoptic.sync_free import class_tensors, label_counts
from depth_panoptic_ros.panoptic.thing_geometry import ThingGeometryCheck, failing_things

STRATEGIES = ("fcn", "degeus", "learned")


@dataclass(frozen=True)
class MergeConfig:
    """Published defaults: Panoptic FCN's Cityscapes fork (mask 0.5, overlap 0.5, stuff >= 2048 px of a
    1024x2048 image, kept as a fraction so it scales with the output size) and de Geus et al. (alpha 0.25,
    stuff >= 1/512 of the image). drop_thing_fragments (not in the papers): each instance keeps only its largest
    connected part, its other pixels go to stuff as if no thing had claimed them (panoptic/fragments.py)."""

    strategy: str = "fcn"
    mask_threshold: float = 0.5
    overlap_threshold: float = 0.5
    stuff_min_area_fraction: float = 2048 / (1024 * 2048)
    degeus_alpha: float = 0.25
    degeus_stuff_min_fraction: float = 1 / 512
    drop_thing_fragments: bool = True

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"merge strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if not isinstance(self.drop_thing_fragments, bool):
            raise ValueError(f"merge drop_thing_fragments must be true or false, got {self.drop_thing_fragments!r}")
        for name in (
            "mask_threshold",
            "overlap_threshold",
            "stuff_min_area_fraction",
            "degeus_alpha",
            "degeus_stuff_min_fraction",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"merge {name} must lie in [0, 1], got {value!r}")


def merge_fcn(
    masks: torch.Tensor,
    classes: torch.Tensor,
    scores: torch.Tensor,
    class_table: ClassTable,
    config: MergeConfig,
    check: ThingGeometryCheck | None = None,
) -> PanopticResult:
    """Panoptic FCN: things in score order with the overlap skip, then stuff by per-pixel argmax on free pixels.
    ``check``: things failing the geometry check (panoptic/thing_geometry.py) leave their pixels to stuff."""
    merged = _check_and_order(masks, classes, scores, class_table)
    owner = torch.full(masks.shape[1:], -1, dtype=torch.int32, device=masks.device)
    free = torch.ones(masks.shape[1:], dtype=torch.bool, device=masks.device)
    # Whether a thing is kept depends on which higher-scored things were kept, so the paste is sequential;
    # each step is a few whole-image tensor ops without a host sync, and no (N, H, W) intermediate is built.
    for index in merged.thing_list:
        mask = masks[index] > config.mask_threshold
        area = mask.sum()
        claim = mask & free
        claim &= (area > 0) & (area - claim.sum() <= config.overlap_threshold * area)
        owner.masked_fill_(claim, index)
        free ^= claim
    # free pixels take stuff, whatever owner holds
    free |= given_back(owner, merged.classes, class_table, config, check)
    _, stuff_owner = _best_mask(masks[merged.stuff], merged.stuff)
    owner = torch.where(free, stuff_owner, owner)
    return _to_result(owner, merged, scores, class_table, config.stuff_min_area_fraction)


def merge_degeus(
    masks: torch.Tensor,
    classes: torch.Tensor,
    scores: torch.Tensor,
    class_table: ClassTable,
    config: MergeConfig,
    check: ThingGeometryCheck | None = None,
) -> PanopticResult:
    """de Geus et al.: per-pixel score x probability among things, stuff where no thing claims and prob >= alpha.
    ``check`` as merge_fcn's."""
    merged = _check_and_order(masks, classes, scores, class_table)
    things, stuff = merged.things, merged.stuff
    weighted = masks[things]  # a copy: scaled and masked in place below
    below = weighted <= config.mask_threshold
    weighted.mul_(scores[things][:, None, None]).masked_fill_(below, -torch.inf)
    thing_best, thing_owner = _best_mask(weighted, things)
    claimed = thing_best > -torch.inf
    claimed &= ~given_back(torch.where(claimed, thing_owner, -1), merged.classes, class_table, config, check)
    stuff_best, stuff_owner = _best_mask(masks[stuff], stuff)
    stuff_owner = torch.where(stuff_best >= config.degeus_alpha, stuff_owner, -1)
    owner = torch.where(claimed, thing_owner, stuff_owner)
    return _to_result(owner, merged, scores, class_table, config.degeus_stuff_min_fraction)


_MERGES = {"fcn": merge_fcn, "degeus": merge_degeus, "learned": merge_degeus}  # learned: masks already refined


def merge_panoptic(
    strategy: str,
    masks: torch.Tensor,
    classes: torch.Tensor,
    scores: torch.Tensor,
    class_table: ClassTable,
    config: MergeConfig,
    check: ThingGeometryCheck | None = None,
) -> PanopticResult:
    """Dispatch by name ("fcn" | "degeus" | "learned"), normally ``config.strategy``; ``check``: the frame's
    thing geometry check, None = none."""
    if strategy not in _MERGES:
        raise ValueError(f"merge strategy must be one of {STRATEGIES}, got {strategy!r}")
    return _MERGES[strategy](masks, classes, scores, class_table, config, check)


def given_back(
    owner: torch.Tensor,
    classes: torch.Tensor,
    class_table: ClassTable,
    config: MergeConfig,
    check: ThingGeometryCheck | None,
) -> torch.Tensor:
    """bool (H, W): the thing pixels of ``owner`` (mask index per pixel, -1 where no thing is) that the merge
    gives to stuff: each instance's fragments (drop_thing_fragments), then the instances that fail the geometry
    ``check``, judged without their fragments."""
    parts = ThingRuns(owner)
    if config.drop_thing_fragments:
        parts.drop_fragments()
    back = parts.given_back()
    if check is None:
        return back
    failing = failing_things(owner, back, classes, class_table, check)
    if owner.device.type == "cpu":  # paint the failing instances' runs
        parts.drop_instances(failing.numpy())
        return parts.given_back()
    # a GPU looks every pixel up rather than wait for the verdicts to paint them on the host
    return back | torch.cat((failing, failing.new_zeros(1)))[owner]  # owner -1 (no thing) reads the last entry


class _Order(NamedTuple):
    """The masks of a merge: classes (N,) int64 class indices, is_thing (N,), order (N,) the paste order
    (decreasing score, ties by input order), the things and the stuff masks in that order on the device, and the
    same things as a host list (merge_fcn pastes them one by one)."""

    classes: torch.Tensor
    is_thing: torch.Tensor
    order: torch.Tensor
    things: torch.Tensor
    stuff: torch.Tensor
    thing_list: list[int]


def _check_and_order(
    masks: torch.Tensor, classes: torch.Tensor, scores: torch.Tensor, class_table: ClassTable
) -> _Order:
    """Validate once and order the masks. The value checks and the things' order are read from the device in one
    transfer; the details of an error only when there is one."""
    if masks.ndim != 3 or not masks.is_floating_point():
        raise ValueError(f"masks must be float (N, H, W) probabilities, got {masks.dtype} {tuple(masks.shape)}")
    n = masks.shape[0]
    if classes.shape != (n,) or classes.is_floating_point() or classes.dtype == torch.bool:
        raise ValueError(f"classes must be integer ({n},) class indices, got {classes.dtype} {tuple(classes.shape)}")
    if scores.shape != (n,) or not scores.is_floating_point():
        raise ValueError(f"scores must be float ({n},), got {scores.dtype} {tuple(scores.shape)}")
    classes = classes.long()
    valid = classes.clamp(0, len(class_table) - 1)  # an index out of range is reported below, not a device fault
    is_thing = class_tensors(class_table, masks.device).is_thing[valid]
    order = torch.argsort(scores, descending=True, stable=True)
    by_kind = order[torch.argsort(~is_thing[order], stable=True)]  # the things, then the stuff, each in order
    bounds = torch.cat((classes, classes.new_zeros(1))).aminmax()  # 0, a valid index, stands in for none
    in_range = ((scores >= 0) & (scores <= 1)).all()
    per_stuff_class = label_counts(torch.where(is_thing, len(class_table), valid), len(class_table) + 1)[:-1]
    facts = torch.stack((bounds.min, bounds.max, in_range.long(), (per_stuff_class > 1).any().long(), is_thing.sum()))
    low, high, scores_valid, repeated_stuff, thing_count, *on_host = torch.cat((facts, by_kind)).tolist()
    if low < 0 or high >= len(class_table):
        low, high = int(classes.min()), int(classes.max())
        raise ValueError(f"classes must be indices in [0, {len(class_table)}), got range [{low}, {high}]")
    if not scores_valid:
        raise ValueError(f"scores must lie in [0, 1], got range [{float(scores.min())}, {float(scores.max())}]")
    if repeated_stuff:
        stuff = classes[~is_thing]
        raise ValueError(f"at most one mask per stuff class, got stuff class indices {sorted(stuff.tolist())}")
    return _Order(classes, is_thing, order, by_kind[:thing_count], by_kind[thing_count:], on_host[:thing_count])


def _best_mask(values: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel, the best of ``values`` (K, H, W) and the mask index (``index[k]``) holding it; (-inf, -1)
    everywhere when K = 0, so callers need no special case for a frame without things or stuff."""
    if len(index) == 0:
        shape = values.shape[1:]
        return values.new_full(shape, -torch.inf), torch.full(shape, -1, dtype=torch.long, device=values.device)
    best, arg = values.max(0)
    return best, index[arg]


def _to_result(
    owner: torch.Tensor, merged: _Order, scores: torch.Tensor, class_table: ClassTable, stuff_min_fraction: float
) -> PanopticResult:
    """Owner map (mask index per pixel, -1 void) -> panoptic ids: small stuff voided, things numbered 1.. per
    class in paste order, counting only instances that kept pixels. On a GPU the map and each mask's id, score and
    whether it kept pixels come to the host in one copy (int32, the scores by their bits), the segments picked
    there."""
    classes, is_thing, order = merged.classes, merged.is_thing, merged.order
    n = len(classes)
    flat = owner.flatten() + 1
    area = label_counts(flat, n + 1)[1:]
    present = (area > 0) & (is_thing | (area >= stuff_min_fraction * owner.numel()))
    counted = torch.nn.functional.one_hot(classes[order], len(class_table)) * (present & is_thing)[order, None]
    instance = torch.empty_like(classes)
    instance[order] = counted.cumsum(0).gather(1, classes[order, None]).squeeze(1)
    class_ids = class_tensors(class_table, owner.device).ids[classes]
    panoptic = class_ids * class_table.label_divisor + instance  # stuff columns of ``counted`` are all zero
    lookup = torch.cat([panoptic.new_zeros(1), torch.where(present, panoptic, 0)])
    ids = lookup[flat].reshape(owner.shape).to(torch.int32)
    per_mask = torch.stack((present.int(), panoptic.int(), scores.float().view(torch.int32)))[:, order]
    if owner.device.type == "cpu":  # already on the host: views, no copy of the map
        host_ids, (kept, segment_ids, score_bits) = ids.numpy(), per_mask.numpy()
    else:
        host = torch.cat((ids.flatten(), per_mask.flatten())).cpu().numpy()  # one copy to the host
        host_ids = host[: ids.numel()].reshape(owner.shape)
        kept, segment_ids, score_bits = host[ids.numel() :].reshape(3, n)
    kept = kept.astype(bool)
    return PanopticResult(
        ids=host_ids,
        segment_ids=segment_ids[kept],
        segment_scores=score_bits[kept].view(np.float32),
        device_ids=None if owner.device.type == "cpu" else ids,
    )
