"""Learned depth completion and the joint refiner: the normalized convolution by hand, the guarantees the
pipeline relies on (identity at initialization, unmeasured pixels ignored, any size), and trainability."""

from __future__ import annotations

import math

import pytest
import torch

from depth_panoptic_ros.depth.network import DepthCompletionConfig, DepthCompletionNet, JointRefiner, NormalizedConv2d

torch.set_num_threads(1)


def _inputs(h: int = 21, w: int = 35, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A tilted plane as init depth (0 on a patch: unknown) and ~10 % of it, noisy, as sparse depth."""
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randn(batch, 3, h, w, generator=g)
    rows = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
    init = (5.0 + rows * 0.5).expand(batch, 1, h, w).clone()
    init[..., :3, :4] = 0.0
    keep = torch.rand(batch, 1, h, w, generator=g) < 0.1
    sparse = torch.where(keep, init + torch.randn(batch, 1, h, w, generator=g), 0.0).clamp(min=0.0)
    return rgb, sparse, init


def _trained_like(net: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Give the zero-initialized output layer random weights, so the output depends on the inputs."""
    g = torch.Generator().manual_seed(seed)
    head = net.head if isinstance(net, DepthCompletionNet) else net.delta[-1]
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=g) * 0.1)
    return net.eval()


def test_normalized_conv_by_hand() -> None:
    """Unit weights (softplus(log(e - 1)) = 1), 3x3: the output is the mean of the measured neighbors and the
    confidence the measured share of the kernel."""
    conv = NormalizedConv2d(1, 1, 3)
    with torch.no_grad():
        conv.weight.fill_(math.log(math.e - 1.0))
    value = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]).view(1, 1, 3, 3)
    confidence = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).view(1, 1, 3, 3)
    out, out_confidence = conv(value, confidence)
    assert out[0, 0, 1, 1].item() == pytest.approx((1 + 3 + 9) / 3, rel=1e-6)
    assert out_confidence[0, 0, 1, 1].item() == pytest.approx(3 / 9, rel=1e-6)
    # top-left: neighbors (0,0),(0,1),(1,0),(1,1) of which only (0,0) = 1 is measured; the zero padding counts
    # as unmeasured
    assert out[0, 0, 0, 0].item() == pytest.approx(1.0, rel=1e-6)
    assert out_confidence[0, 0, 0, 0].item() == pytest.approx(1 / 9, rel=1e-6)


def test_normalized_conv_ignores_unmeasured_values() -> None:
    conv = NormalizedConv2d(2, 4, 5)
    g = torch.Generator().manual_seed(0)
    value = torch.rand(1, 2, 12, 12, generator=g)
    confidence = (torch.rand(1, 2, 12, 12, generator=g) < 0.3).float()
    garbage = torch.where(confidence > 0, value, 1e4 * torch.rand(value.shape, generator=g))
    for a, b in zip(conv(value, confidence), conv(garbage, confidence), strict=True):
        assert torch.equal(a, b)
    moved = value.clone()
    moved[confidence > 0] += 1.0
    assert not torch.equal(conv(moved, confidence)[0], conv(value, confidence)[0])


@pytest.mark.parametrize(("h", "w", "batch"), [(21, 35, 1), (17, 9, 2), (8, 8, 1), (1, 1, 1)])
def test_any_size_gives_input_size(h: int, w: int, batch: int) -> None:
    net = _trained_like(DepthCompletionNet(DepthCompletionConfig(width=8, n_blocks=2)))
    with torch.no_grad():
        out = net(*_inputs(h, w, batch))
    assert out.shape == (batch, 1, h, w)
    assert torch.isfinite(out).all() and (out >= 0).all()


def test_untrained_output_is_the_classical_depth_exactly() -> None:
    net = DepthCompletionNet(DepthCompletionConfig(width=8, n_blocks=2))
    rgb, sparse, init = _inputs()
    for training in (True, False):
        assert torch.equal(net.train(training)(rgb, sparse, init), init)


def test_residual_is_bounded_by_residual_scale() -> None:
    cfg = DepthCompletionConfig(width=8, n_blocks=1, residual_scale=0.5)
    net = _trained_like(DepthCompletionNet(cfg))
    with torch.no_grad():
        net.head.bias.fill_(100.0)  # tanh saturates: the largest correction allowed
        rgb, sparse, init = _inputs()
        out = net(rgb, sparse, init)
    torch.testing.assert_close(out, init + 0.5)


def test_unmeasured_sparse_pixels_change_nothing() -> None:
    """0, negative, NaN and inf all mean 'no LiDAR return' and give the same output; a real return does not."""
    net = _trained_like(DepthCompletionNet(DepthCompletionConfig(width=8, n_blocks=2)))
    rgb, sparse, init = _inputs()
    holes = (sparse == 0).nonzero()[:40].T
    corrupted = sparse.clone()
    corrupted[tuple(holes)] = torch.tensor([-3.0, math.nan, math.inf, -math.inf]).repeat(10)
    with torch.no_grad():
        reference = net(rgb, sparse, init)
        assert torch.equal(net(rgb, corrupted, init), reference)
        measured = sparse.clone()
        measured[tuple(holes[:, :1])] = 30.0
        assert not torch.equal(net(rgb, measured, init), reference)


def test_semantic_logits_at_any_resolution_are_used() -> None:
    cfg = DepthCompletionConfig(width=8, n_blocks=1, use_semantics=True, n_classes=5)
    net = _trained_like(DepthCompletionNet(cfg))
    rgb, sparse, init = _inputs(20, 32)
    logits = torch.randn(1, 5, 5, 8)
    with torch.no_grad():
        out = net(rgb, sparse, init, logits)
        assert out.shape == (1, 1, 20, 32)
        assert not torch.equal(net(rgb, sparse, init, logits + torch.randn_like(logits)), out)


def test_gradients_reach_every_parameter() -> None:
    """The zero-initialized head still receives a gradient; once it moves, every layer does."""
    net = DepthCompletionNet(DepthCompletionConfig(width=8, n_blocks=2)).train()
    rgb, sparse, init = _inputs(batch=2)
    target = init + 1.0
    torch.nn.functional.mse_loss(net(rgb, sparse, init), target).backward()
    assert net.head.weight.grad.abs().sum() > 0
    net.zero_grad()
    _trained_like(net).train()
    torch.nn.functional.mse_loss(net(rgb, sparse, init), target).backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_bad_inputs_are_named() -> None:
    net = DepthCompletionNet(DepthCompletionConfig(width=8, n_blocks=1))
    rgb, sparse, init = _inputs()
    with pytest.raises(ValueError, match="rgb"):
        net(rgb[:, :1], sparse, init)
    with pytest.raises(ValueError, match="sparse"):
        net(rgb, sparse[..., :-1], init)
    with pytest.raises(ValueError, match="init_depth"):
        net(rgb, sparse, init.expand(1, 2, -1, -1))
    with pytest.raises(ValueError, match="use_semantics=False"):
        net(rgb, sparse, init, torch.zeros(1, 19, 5, 5))
    semantic = DepthCompletionNet(DepthCompletionConfig(width=8, n_blocks=1, use_semantics=True, n_classes=3))
    with pytest.raises(ValueError, match="semantic_logits"):
        semantic(rgb, sparse, init)
    with pytest.raises(ValueError, match=r"\(1, 3, h, w\)"):
        semantic(rgb, sparse, init, torch.zeros(1, 4, 5, 5))


@pytest.mark.parametrize(
    "kwargs", [{"width": 0}, {"width": 7}, {"n_blocks": 1.5}, {"max_depth": 0.0}, {"residual_scale": -1.0}]
)
def test_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        DepthCompletionConfig(**kwargs)


def test_joint_refiner_starts_as_identity_and_reads_depth() -> None:
    refiner = JointRefiner(n_classes=6, width=8)
    depth, logits = torch.rand(2, 1, 13, 17), torch.randn(2, 6, 13, 17)
    assert torch.equal(refiner.train()(depth, logits), logits)
    _trained_like(refiner)
    with torch.no_grad():
        refined = refiner(depth, logits)
        assert refined.shape == logits.shape and not torch.equal(refined, logits)
        assert not torch.equal(refiner(depth + 0.5, logits), refined)


def test_joint_refiner_rejects_mismatched_inputs() -> None:
    refiner = JointRefiner(n_classes=6, width=8)
    with pytest.raises(ValueError, match="logits"):
        refiner(torch.rand(1, 1, 8, 8), torch.randn(1, 5, 8, 8))
    with pytest.raises(ValueError, match="depth"):
        refiner(torch.rand(1, 1, 4, 4), torch.randn(1, 6, 8, 8))
