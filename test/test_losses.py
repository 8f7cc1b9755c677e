"""Losses against independent transcriptions of their formulas (values and gradients), and the criterion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from depth_panoptic_ros.classes import ClassTable
from depth_panoptic_ros.panoptic.outputs import PanopticOutputs
from depth_panoptic_ros.training.losses import (
    LossWeights,
    depth_aware_dice_loss,
    depth_completion_loss,
    dice_loss,
    panoptic_criterion,
    sigmoid_focal_loss,
)
from depth_panoptic_ros.training.targets import build_targets, depth_at_mask_stride

torch.set_num_threads(1)


def grads(value: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(value.sum(), inputs)


# --- focal loss -------------------------------------------------------------------------------------------------


def test_focal_loss_hand_computed_elements() -> None:
    logits = torch.tensor([0.0, 2.0], dtype=torch.float64)
    targets = torch.tensor([1.0, 0.0], dtype=torch.float64)
    p = 1 / (1 + math.exp(-2.0))
    expected = [
        0.25 * 0.5**2 * math.log(2.0),  # p = 0.5, target 1: alpha 0.25, (1 - p_t)^2 = 0.25, CE = ln 2
        0.75 * p**2 * math.log(1 + math.exp(2.0)),  # target 0: alpha 0.75, (1 - p_t)^2 = p^2, CE = ln(1 + e^2)
    ]
    assert sigmoid_focal_loss(logits, targets).tolist() == pytest.approx(expected, rel=1e-12)
    assert sigmoid_focal_loss(logits, targets, reduction="sum").item() == pytest.approx(sum(expected), rel=1e-12)


def test_focal_loss_values_and_gradients_match_transcription() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(4, 5, generator=generator, dtype=torch.float64)).requires_grad_()
    targets = torch.rand(4, 5, generator=generator, dtype=torch.float64)  # soft targets, as the Gaussians are
    targets[0] = 1.0
    p = 1 / (1 + torch.exp(-logits))
    ce = -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p))
    one_minus_p_t = targets + p - 2 * targets * p  # 1 - (p t + (1 - p)(1 - t)), expanded
    reference = (0.75 - 0.5 * targets) * one_minus_p_t**2 * ce
    got = sigmoid_focal_loss(logits, targets, reduction="mean")
    assert got.item() == pytest.approx(reference.mean().item(), rel=1e-10)
    torch.testing.assert_close(grads(got, logits)[0], grads(reference.mean(), logits)[0], rtol=1e-9, atol=1e-12)


def test_focal_loss_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="differ"):
        sigmoid_focal_loss(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="reduction"):
        sigmoid_focal_loss(torch.zeros(2), torch.zeros(2), reduction="max")


# --- Dice and depth-aware Dice ----------------------------------------------------------------------------------


def dice_by_loops(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    rows = []
    for pi, gi in zip(p.reshape(len(p), -1), g.reshape(len(g), -1), strict=True):
        num = sum(a * b for a, b in zip(pi, gi, strict=True))
        den = sum(a * a for a in pi) + sum(b * b for b in gi)
        rows.append(1 - 2 * num / den)
    return torch.stack(rows)


def ddice_by_loops(p, g, d, d_g, omega, d_max) -> torch.Tensor:
    rows = []
    for pi, gi, dgi in zip(p.reshape(len(p), -1), g.reshape(len(g), -1), d_g, strict=True):
        num, den = 0.0, 0.0
        for pj, gj, dj in zip(pi, gi, d.reshape(-1), strict=True):
            dbar = abs(dj - dgi) / max(dgi, d_max - dgi) * pj * (1 - gj) if dj > 0 and dgi > 0 else 0.0
            num = num + pj * gj
            den = den + (pj * (1 + omega * dbar)) ** 2 + gj**2
        rows.append(1 - 2 * num / den)
    return torch.stack(rows)


def random_masks(seed: int, n: int = 3, shape=(4, 5)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    p = torch.rand(n, *shape, generator=generator, dtype=torch.float64).requires_grad_()
    g = (torch.rand(n, *shape, generator=generator) > 0.5).double()
    depth = 2 + 60 * torch.rand(shape, generator=generator, dtype=torch.float64)
    depth[0, :3] = 0.0  # invalid pixels
    return p, g, depth


def test_dice_values_and_gradients_match_transcription() -> None:
    p, g, _ = random_masks(1)
    got, expected = dice_loss(p, g), dice_by_loops(p, g)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads(got, p)[0], grads(expected, p)[0], rtol=1e-10, atol=1e-12)


def test_depth_aware_dice_values_and_gradients_match_transcription() -> None:
    p, g, depth = random_masks(2)
    d_g = torch.tensor([12.0, 40.0, 0.0], dtype=torch.float64)  # the last instance has no valid depth
    got = depth_aware_dice_loss(p, g, depth, d_g, omega=3.0, d_max=50.0)  # small d_max: large penalties
    expected = ddice_by_loops(p, g, depth, d_g, 3.0, 50.0)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads(got, p)[0], grads(expected, p)[0], rtol=1e-10, atol=1e-12)
    assert (got[:2] > dice_loss(p, g)[:2]).all()
    assert got[2] == dice_loss(p, g)[2]  # unknown instance depth: no penalty


def test_omega_zero_is_dice_bit_for_bit() -> None:
    for seed in range(5):
        p, g, depth = random_masks(seed, n=6, shape=(16, 16))
        p32, g32, depth32 = p.detach().float().requires_grad_(), g.float(), depth.float()
        d_g = torch.linspace(1.0, 80.0, 6)
        plain = dice_loss(p32, g32)
        aware = depth_aware_dice_loss(p32, g32, depth32, d_g, omega=0.0)
        assert torch.equal(plain, aware)
        assert torch.equal(grads(plain, p32)[0], grads(aware, p32)[0])


def test_false_positive_far_away_costs_more_than_at_the_instance_depth() -> None:
    p = torch.tensor([[1.0, 0.5]])  # pixel 2 is a false positive with probability 0.5
    g = torch.tensor([[1.0, 0.0]])
    d_g = torch.tensor([10.0])
    at_depth = depth_aware_dice_loss(p, g, torch.tensor([10.0, 10.0]), d_g)
    invalid = depth_aware_dice_loss(p, g, torch.tensor([10.0, 0.0]), d_g)
    far = depth_aware_dice_loss(p, g, torch.tensor([10.0, 255.0]), d_g)
    plain = 1 - 2 * 1.0 / (1 + 0.25 + 1)  # Dice: 2 * 1 / (1 + 0.5^2 + 1) -> loss 1/9
    assert at_depth.item() == pytest.approx(plain) and invalid.item() == pytest.approx(plain)
    # dbar = |255 - 10| / max(10, 490) * 0.5 * (1 - 0) = 0.25 -> scale 1 + 3 * 0.25 = 1.75 -> (0.5 * 1.75)^2
    assert far.item() == pytest.approx(1 - 2 / (1 + 0.875**2 + 1))


def test_dice_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"dice_loss: pred and gt must both be \(N, ...\)"):
        dice_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="does not broadcast"):
        depth_aware_dice_loss(torch.zeros(2, 3, 3), torch.zeros(2, 3, 3), torch.zeros(4, 4), torch.ones(2))
    with pytest.raises(ValueError, match=r"gt_depth_mean must be \(2,\)"):
        depth_aware_dice_loss(torch.zeros(2, 3, 3), torch.zeros(2, 3, 3), torch.zeros(3, 3), torch.ones(3))


# --- depth completion loss --------------------------------------------------------------------------------------


def test_depth_completion_loss_uses_valid_ground_truth_only() -> None:
    pred = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    gt = torch.tensor([2.0, 0.0, 5.0])  # errors -1 and -2 on the valid pixels
    assert depth_completion_loss(pred, gt).item() == pytest.approx(2.5)  # (1 + 4) / 2
    assert depth_completion_loss(pred, gt, "l1").item() == pytest.approx(1.5)
    assert depth_completion_loss(pred, gt, "smooth_l1").item() == pytest.approx(1.0)  # (0.5 + 1.5) / 2
    (grad,) = grads(depth_completion_loss(pred, gt), pred)
    assert grad.tolist() == pytest.approx([-1.0, 0.0, -2.0])  # d/dpred of mean e^2 = 2 e / 2
    empty = depth_completion_loss(pred, torch.zeros(3))
    assert empty.item() == 0.0 and empty.requires_grad
    with pytest.raises(ValueError, match="kind"):
        depth_completion_loss(pred, gt, "huber")


def test_loss_weights_defaults_and_validation() -> None:
    assert LossWeights() == LossWeights(pos=1.0, seg=3.0, omega=3.0, d_max=500.0, top_k=7)
    with pytest.raises(ValueError, match="top_k"):
        LossWeights(top_k=0)
    with pytest.raises(ValueError, match="d_max"):
        LossWeights(d_max=0.0)


# --- criterion --------------------------------------------------------------------------------------------------

TABLE = ClassTable.cityscapes()
N_THING, N_STUFF = len(TABLE.thing_indices), len(TABLE.stuff_indices)
STRIDES = (8, 16, 32, 64, 128)


def scene() -> tuple[np.ndarray, np.ndarray]:
    ids = np.full((128, 256), 7000, dtype=np.int64)  # road
    ids[:40] = 23000  # sky
    ids[50:90, 20:70] = 26001  # two cars, a person, a car crowd region
    ids[60:100, 100:150] = 26002
    ids[40:110, 180:200] = 24001
    ids[100:128, 0:40] = 26000
    depth = np.where(np.arange(128)[:, None] > 40, 5.0 + np.arange(256)[None, :] / 10, 0.0).astype(np.float32)
    return ids, depth


def random_outputs(batch: int, channels: int = 8, seed: int = 0) -> PanopticOutputs:
    generator = torch.Generator().manual_seed(seed)

    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator).requires_grad_()

    return PanopticOutputs(
        features=leaf(batch, channels, 32, 64),
        centers=[leaf(batch, N_THING, 128 // s, 256 // s) for s in STRIDES],
        stuff=[leaf(batch, N_STUFF, 128 // s, 256 // s) for s in STRIDES],
        kernels=[leaf(batch, channels, 128 // s, 256 // s) for s in STRIDES],
    )


def test_criterion_is_finite_and_reaches_every_output() -> None:
    ids, depth = scene()
    targets = [build_targets(ids, TABLE, depth), build_targets(np.full((128, 256), 7000), TABLE)]
    outputs = random_outputs(batch=2)
    depth4 = depth_at_mask_stride(torch.from_numpy(np.stack([depth, depth]))[:, None])
    losses = panoptic_criterion(outputs, targets, depth4)
    assert set(losses) == {"pos_thing", "pos_stuff", "seg_thing", "seg_stuff"}
    assert all(v.ndim == 0 and torch.isfinite(v) and v > 0 for v in losses.values())
    leaves = [outputs.features, *outputs.kernels, *outputs.centers, *outputs.stuff]
    gradients = torch.autograd.grad(sum(losses.values()), leaves)
    for level in range(5):  # every level holds a stuff region, so every kernel map takes part
        assert gradients[1 + level].abs().sum() > 0, f"kernels[{level}]"
    assert gradients[0].abs().sum() > 0
    assert all(g.abs().sum() > 0 for g in gradients[6:])  # centers (focal + kernel scores) and stuff maps
    # the second image has no thing: its center maps get only the focal gradient towards 0
    assert (gradients[6][1] > 0).all()


def test_criterion_with_constant_kernels_reduces_to_one_mask_per_target() -> None:
    """With the same kernel everywhere every training kernel predicts the same mask, so the weighted sums collapse
    to single Dice terms that are easy to compute independently."""
    ids = np.full((128, 256), 7000, dtype=np.int64)
    ids[32:96, 64:128] = 26001  # one 64 px car: levels 0 and 1
    targets = [build_targets(ids, TABLE)]
    outputs = random_outputs(batch=1, seed=3)
    kernel = torch.randn(8, generator=torch.Generator().manual_seed(4))
    outputs.kernels = [kernel[None, :, None, None].expand(1, 8, 128 // s, 256 // s) for s in STRIDES]
    mask = torch.sigmoid(torch.einsum("c,chw->hw", kernel, outputs.features[0]))

    def dice(p: torch.Tensor, g: torch.Tensor) -> float:
        return 1 - 2 * (p * g).sum().item() / ((p * p).sum() + (g * g).sum()).item()

    losses = panoptic_criterion(outputs, targets, None)
    car = targets[0].thing_masks[0]
    road = targets[0].stuff_masks[TABLE.stuff_indices.tolist().index(TABLE.names.index("road"))]
    # 2 (instance, level) assignments of one car, each contributing its Dice loss: mean = that loss
    assert losses["seg_thing"].item() == pytest.approx(3.0 * dice(mask, car), rel=1e-5)
    # road present at all 5 levels, each with the same kernel and target
    assert losses["seg_stuff"].item() == pytest.approx(3.0 * dice(mask, road), rel=1e-5)


def test_criterion_omega_zero_equals_rgb_only_mode() -> None:
    ids, depth = scene()
    targets = [build_targets(ids, TABLE, depth)]
    outputs = random_outputs(batch=1, seed=5)
    depth4 = depth_at_mask_stride(torch.from_numpy(depth)[None, None])
    aware = panoptic_criterion(outputs, targets, depth4, LossWeights(omega=0.0))
    plain = panoptic_criterion(outputs, targets, None)
    assert all(torch.equal(aware[key], plain[key]) for key in plain)
    assert panoptic_criterion(outputs, targets, depth4)["seg_thing"] > plain["seg_thing"]


def test_criterion_rejects_targets_of_another_size() -> None:
    targets = [build_targets(np.full((256, 256), 7000), TABLE)]
    with pytest.raises(ValueError, match=r"outputs.features is \(32, 64\) per image but its target is \(64, 64\)"):
        panoptic_criterion(random_outputs(batch=1), targets, None)
    with pytest.raises(ValueError, match="one PanopticTargets per image"):
        panoptic_criterion(random_outputs(batch=2), targets, None)
