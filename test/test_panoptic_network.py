"""DepthAwarePanopticFCN: shapes for any input size, fusion variants, the depth branch's effect, speed paths."""

from __future__ import annotations

import pytest
import torch

from depth_panoptic_ros.panoptic.config import PanopticNetConfig
from depth_panoptic_ros.panoptic.fusion import LateFusion
from depth_panoptic_ros.panoptic.heads import FeatureEncoder, PositionHead, add_coordinates
from depth_panoptic_ros.panoptic.levels import padded_size
from depth_panoptic_ros.panoptic.network import DepthAwarePanopticFCN
from depth_panoptic_ros.panoptic.outputs import PanopticOutputs
from depth_panoptic_ros.typed_config import from_dict, to_dict

torch.set_num_threads(1)

TINY = {"backbone": "r18", "fpn_channels": 32, "head_channels": 64, "embed_dim": 32}
N_THING, N_STUFF = 2, 3


def tiny(fusion: str = "mean") -> DepthAwarePanopticFCN:
    torch.manual_seed(0)
    config = PanopticNetConfig(fusion=fusion, num_thing_classes=N_THING, num_stuff_classes=N_STUFF, **TINY)
    return DepthAwarePanopticFCN(config).eval()


@pytest.fixture(scope="module")
def mean_net() -> DepthAwarePanopticFCN:
    return tiny("mean")


def inputs(h: int, w: int, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, h, w, generator=g), torch.randn(batch, 1, h, w, generator=g)


def test_padded_size_is_next_multiple_of_128() -> None:
    assert padded_size(67, 101) == (128, 128)
    assert padded_size(128, 129) == (128, 256)
    assert padded_size(1024, 2048) == (1024, 2048)


@pytest.mark.parametrize(("h", "w"), [(67, 101), (64, 96), (129, 37)])
def test_output_shapes_for_odd_sizes(mean_net: DepthAwarePanopticFCN, h: int, w: int) -> None:
    rgb, depth = inputs(h, w, batch=2)
    with torch.inference_mode():
        out = mean_net(rgb, depth)
    ph, pw = -(-h // 128) * 128, -(-w // 128) * 128
    assert out.features.shape == (2, 32, ph // 4, pw // 4)
    strides = (8, 16, 32, 64, 128)
    assert [tuple(c.shape) for c in out.centers] == [(2, N_THING, ph // s, pw // s) for s in strides]
    assert [tuple(s.shape) for s in out.stuff] == [(2, N_STUFF, ph // s, pw // s) for s in strides]
    assert [tuple(k.shape) for k in out.kernels] == [(2, 32, ph // s, pw // s) for s in strides]
    tensors = [out.features, *out.centers, *out.stuff, *out.kernels]
    assert all(t.dtype == torch.float32 and bool(torch.isfinite(t).all()) for t in tensors)


def test_padding_is_zeros_at_bottom_right(mean_net: DepthAwarePanopticFCN) -> None:
    rgb, depth = inputs(67, 101)
    padded = [torch.nn.functional.pad(x, (0, 128 - 101, 0, 128 - 67)) for x in (rgb, depth)]
    with torch.inference_mode():
        a, b = mean_net(rgb, depth), mean_net(*padded)
    torch.testing.assert_close(a.features, b.features)
    for x, y in zip(a.kernels + a.centers + a.stuff, b.kernels + b.centers + b.stuff, strict=True):
        torch.testing.assert_close(x, y)


def test_batch_items_are_independent(mean_net: DepthAwarePanopticFCN) -> None:
    rgb, depth = inputs(64, 96, batch=2)
    with torch.inference_mode():
        both = mean_net(rgb, depth)
        second = mean_net(rgb[1:], depth[1:])
    one = both.image(1)
    torch.testing.assert_close(one.features, second.features, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(one.centers[2], second.centers[2], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="image index"):
        both.image(2)


def _names(net: DepthAwarePanopticFCN) -> set[str]:
    return {n for n, _ in net.named_parameters()}


def test_fusion_variants_build_the_right_modules() -> None:
    rgb_only, mean, concat = tiny("none"), tiny("mean"), tiny("concat")
    assert not any(n.startswith(("depth_", "fusion")) for n in _names(rgb_only))
    assert rgb_only.depth_backbone is None and rgb_only.depth_fpn is None
    assert mean.depth_backbone.conv1.weight.shape == (64, 1, 7, 7)
    assert not any(n.startswith("fusion") for n in _names(mean))  # mean fusion has no parameters
    reduce = {n: tuple(p.shape) for n, p in concat.named_parameters() if n.startswith("fusion")}
    expected = {f"fusion.reduce.{i}.weight": (32, 64, 1, 1) for i in range(6)}
    assert reduce == expected | {f"fusion.reduce.{i}.bias": (32,) for i in range(6)}
    assert _count(concat) - _count(mean) == 6 * (64 * 32 + 32)
    assert _count(mean, "color_backbone") - _count(mean, "depth_backbone") == 64 * 2 * 7 * 7  # 1 band, not 3


def _count(net: DepthAwarePanopticFCN, prefix: str = "") -> int:
    return sum(p.numel() for n, p in net.named_parameters() if n.startswith(prefix))


def test_depth_changes_the_output_only_when_fused(mean_net: DepthAwarePanopticFCN) -> None:
    rgb, depth = inputs(64, 96)
    other = depth.flip(-1) * 2
    with torch.inference_mode():
        a, b = mean_net(rgb, depth), mean_net(rgb, other)
        rgb_only = tiny("none")
        c, d, e = rgb_only(rgb, depth), rgb_only(rgb, other), rgb_only(rgb)
    assert (a.features - b.features).abs().max() > 1e-3
    assert (a.kernels[0] - b.kernels[0]).abs().max() > 1e-4
    assert torch.equal(c.features, d.features) and torch.equal(c.features, e.features)
    assert torch.equal(c.centers[0], e.centers[0])


def test_concat_fusion_runs_and_uses_depth() -> None:
    net = tiny("concat")
    rgb, depth = inputs(64, 64)
    with torch.inference_mode():
        a, b = net(rgb, depth), net(rgb, torch.zeros_like(depth))
    assert a.features.shape == (1, 32, 32, 32)
    assert (a.stuff[1] - b.stuff[1]).abs().max() > 0


def test_late_fusion_formulas() -> None:
    g = torch.Generator().manual_seed(3)
    color = [torch.randn(1, 4, 8 >> i, 8 >> i, generator=g) for i in range(2)]
    depth = [torch.randn(1, 4, 8 >> i, 8 >> i, generator=g) for i in range(2)]
    for c, d, f in zip(color, depth, LateFusion("mean", 4, 2)(color, depth), strict=True):
        torch.testing.assert_close(f, (c + d) / 2)
    concat = LateFusion("concat", 4, 2)
    with torch.no_grad():
        for conv in concat.reduce:
            conv.weight.zero_()
            conv.bias.fill_(0.5)
            conv.weight[:, 4:, 0, 0] = torch.eye(4)  # pass the depth level through
    for d, f in zip(depth, concat(color, depth), strict=True):
        torch.testing.assert_close(f, d + 0.5)
    with pytest.raises(ValueError, match="fusion mode"):
        LateFusion("sum", 4, 2)


def test_missing_or_misshaped_depth_is_a_clear_error(mean_net: DepthAwarePanopticFCN) -> None:
    rgb, depth = inputs(64, 64)
    with pytest.raises(ValueError, match=r"depth must be \(1, 1, 64, 64\) for fusion 'mean', got None"):
        mean_net(rgb)
    with pytest.raises(ValueError, match=r"got \(1, 1, 64, 32\)"):
        mean_net(rgb, depth[..., :32])
    with pytest.raises(ValueError, match=r"rgb must be \(B, 3, H, W\), got \(1, 4, 64, 64\)"):
        mean_net(torch.cat((rgb, depth), 1), depth)


def test_position_head_init_follows_the_reference() -> None:
    torch.manual_seed(0)
    head = PositionHead(32, 64, num_things=8, num_stuff=11)
    for conv in (head.centers, head.stuff):
        assert torch.equal(conv.bias, torch.full_like(conv.bias, -2.19))
        assert 0.008 < conv.weight.std().item() < 0.012
    with torch.inference_mode():
        centers, stuff = head(torch.randn(1, 32, 5, 7))
    assert centers.shape == (1, 8, 5, 7) and stuff.shape == (1, 11, 5, 7)
    assert 0.05 < torch.sigmoid(centers).mean().item() < 0.2  # starts near the prior 0.1


def test_add_coordinates_spans_minus_one_to_one() -> None:
    x = add_coordinates(torch.zeros(2, 1, 3, 5))
    assert x.shape == (2, 3, 3, 5)
    torch.testing.assert_close(x[0, 1, :, 0], torch.tensor([-1.0, 0.0, 1.0]))  # rows
    torch.testing.assert_close(x[1, 2, 0], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))  # columns


def test_feature_encoder_merges_p2_to_p5_at_stride_4() -> None:
    torch.manual_seed(0)
    enc = FeatureEncoder(16, 64, 8)
    # conv counts per level as the semantic FPN: P2 1, P3 1, P4 2, P5 3 (each followed by 2x up except P2)
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in head.modules()) for head in enc.scale_heads]
    assert convs == [1, 1, 2, 3]
    levels = [torch.randn(1, 16, 32 >> i, 48 >> i) for i in range(4)]
    with torch.inference_mode():
        out = enc(levels)
    assert out.shape == (1, 8, 32, 48) and bool((out >= 0).all())  # ReLU after the last encoder conv


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_outputs_survive_autocast_and_channels_last(dtype: torch.dtype) -> None:
    net = tiny("mean").to(memory_format=torch.channels_last)
    rgb, depth = inputs(67, 101)
    with torch.inference_mode():
        ref = net(rgb, depth)
        with torch.autocast("cpu", dtype=dtype):
            low = net(rgb.contiguous(memory_format=torch.channels_last), depth)
    assert low.features.dtype == dtype and low.kernels[0].dtype == dtype
    scale = ref.features.abs().max()
    assert (low.features.float() - ref.features).abs().max() < 0.05 * scale


@pytest.mark.slow
def test_forward_compiles_as_one_graph(mean_net: DepthAwarePanopticFCN) -> None:
    """fullgraph=True fails on any graph break, i.e. on data-dependent Python control flow in forward."""
    torch._dynamo.reset()
    compiled = torch.compile(mean_net, fullgraph=True, backend="eager")
    rgb, depth = inputs(67, 101)
    with torch.inference_mode():
        out, ref = compiled(rgb, depth), mean_net(rgb, depth)
    assert isinstance(out, PanopticOutputs)
    torch.testing.assert_close(out.features, ref.features)
    torch.testing.assert_close(out.kernels[4], ref.kernels[4])


def test_imagenet_weights_load_into_both_encoders() -> None:
    net = tiny("mean")
    sd = {k: torch.rand_like(v) for k, v in net.color_backbone.state_dict().items()}
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    net.load_imagenet(sd)
    assert torch.equal(net.color_backbone.layer2[0].conv1.weight, sd["layer2.0.conv1.weight"])
    assert torch.equal(net.depth_backbone.layer2[0].conv1.weight, sd["layer2.0.conv1.weight"])
    torch.testing.assert_close(net.depth_backbone.conv1.weight, sd["conv1.weight"].mean(1, keepdim=True))


def test_config_defaults_are_the_published_ones_and_round_trip() -> None:
    config = PanopticNetConfig()
    assert (config.backbone, config.fusion, config.embed_dim, config.fpn_channels) == ("r50", "mean", 256, 256)
    assert (config.num_thing_classes, config.num_stuff_classes) == (8, 11)  # Cityscapes
    data = to_dict(PanopticNetConfig(backbone="r34", fusion="concat", embed_dim=128))
    assert data["backbone"] == "r34" and data["embed_dim"] == 128
    assert from_dict(PanopticNetConfig, data, "PanopticNetConfig") == PanopticNetConfig(
        backbone="r34", fusion="concat", embed_dim=128
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"backbone": "r101"}, r"backbone must be one of \('r18', 'r34', 'r50'\), got 'r101'"),
        ({"fusion": "early"}, r"fusion must be one of"),
        ({"embed_dim": 0}, r"embed_dim must be a positive integer, got 0"),
        ({"head_channels": 96 + 1}, r"head_channels must be a multiple of 32"),
        ({"head_channels": 32}, r"at least 64, got 32"),
        ({"frozen_bn": "yes"}, r"frozen_bn must be a bool"),
        ({"embed_dims": 64}, r"PanopticNetConfig: unknown key\(s\) \['embed_dims'\]"),
    ],
)
def test_config_rejects_bad_values_by_name(data: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_dict(PanopticNetConfig, data, "PanopticNetConfig")
