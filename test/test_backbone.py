"""ResNet encoders: torchvision's names and shapes, ImageNet loading (color and 1-band depth), frozen BN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from depth_panoptic_ros.panoptic.backbone import FrozenBatchNorm2d, ResNet, load_imagenet_state_dict

torch.set_num_threads(1)

# torchvision resnet18's parameters without the classifier (fc.weight, fc.bias make the well-known 62), written
# out by hand from torchvision's layout: stem, then layerX.Y.{conv1,bn1,conv2,bn2}, downsample.{0,1} in the
# first block of layers 2-4.
RESNET18_PARAMETERS = [
    "conv1.weight", "bn1.weight", "bn1.bias",
    "layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.0.bn1.bias",
    "layer1.0.conv2.weight", "layer1.0.bn2.weight", "layer1.0.bn2.bias",
    "layer1.1.conv1.weight", "layer1.1.bn1.weight", "layer1.1.bn1.bias",
    "layer1.1.conv2.weight", "layer1.1.bn2.weight", "layer1.1.bn2.bias",
    "layer2.0.conv1.weight", "layer2.0.bn1.weight", "layer2.0.bn1.bias",
    "layer2.0.conv2.weight", "layer2.0.bn2.weight", "layer2.0.bn2.bias",
    "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight", "layer2.0.downsample.1.bias",
    "layer2.1.conv1.weight", "layer2.1.bn1.weight", "layer2.1.bn1.bias",
    "layer2.1.conv2.weight", "layer2.1.bn2.weight", "layer2.1.bn2.bias",
    "layer3.0.conv1.weight", "layer3.0.bn1.weight", "layer3.0.bn1.bias",
    "layer3.0.conv2.weight", "layer3.0.bn2.weight", "layer3.0.bn2.bias",
    "layer3.0.downsample.0.weight", "layer3.0.downsample.1.weight", "layer3.0.downsample.1.bias",
    "layer3.1.conv1.weight", "layer3.1.bn1.weight", "layer3.1.bn1.bias",
    "layer3.1.conv2.weight", "layer3.1.bn2.weight", "layer3.1.bn2.bias",
    "layer4.0.conv1.weight", "layer4.0.bn1.weight", "layer4.0.bn1.bias",
    "layer4.0.conv2.weight", "layer4.0.bn2.weight", "layer4.0.bn2.bias",
    "layer4.0.downsample.0.weight", "layer4.0.downsample.1.weight", "layer4.0.downsample.1.bias",
    "layer4.1.conv1.weight", "layer4.1.bn1.weight", "layer4.1.bn1.bias",
    "layer4.1.conv2.weight", "layer4.1.bn2.weight", "layer4.1.bn2.bias",
]  # fmt: skip


def _bn_names(param_names: list[str]) -> list[str]:
    """Every BatchNorm of the parameter list (its prefix), i.e. every *.bias that is not a conv."""
    return [n[: -len(".bias")] for n in param_names if n.endswith(".bias")]


def torchvision_like_state_dict(blocks: tuple[int, ...], bottleneck: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random checkpoint laid out as torchvision saves one (fc and num_batches_tracked included)."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def conv(name: str, out_c: int, in_c: int, k: int) -> None:
        sd[f"{name}.weight"] = torch.randn(out_c, in_c, k, k, generator=g)

    def bn(name: str, c: int) -> None:
        sd[f"{name}.weight"] = torch.rand(c, generator=g) + 0.5
        sd[f"{name}.bias"] = torch.randn(c, generator=g)
        sd[f"{name}.running_mean"] = torch.randn(c, generator=g)
        sd[f"{name}.running_var"] = torch.rand(c, generator=g) + 0.5
        sd[f"{name}.num_batches_tracked"] = torch.tensor(12345)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    expansion = 4 if bottleneck else 1
    in_c = 64
    for layer, (width, n) in enumerate(zip((64, 128, 256, 512), blocks, strict=True), start=1):
        for b in range(n):
            p = f"layer{layer}.{b}"
            shapes = (
                [(width, in_c, 1), (width, width, 3), (width * 4, width, 1)]
                if bottleneck
                else [(width, in_c, 3), (width, width, 3)]
            )
            for i, (out_c, c, k) in enumerate(shapes, start=1):
                conv(f"{p}.conv{i}", out_c, c, k)
                bn(f"{p}.bn{i}", out_c)
            if b == 0 and (layer > 1 or bottleneck):
                conv(f"{p}.downsample.0", width * expansion, in_c, 1)
                bn(f"{p}.downsample.1", width * expansion)
            in_c = width * expansion
    sd["fc.weight"] = torch.randn(1000, 512 * expansion, generator=g)
    sd["fc.bias"] = torch.randn(1000, generator=g)
    return sd


def test_resnet18_parameter_names_match_torchvision_exactly() -> None:
    model = ResNet("r18", frozen_bn=False)
    assert [n for n, _ in model.named_parameters()] == RESNET18_PARAMETERS
    buffers = {n for n, _ in model.named_buffers()}
    expected = {f"{bn}.{b}" for bn in _bn_names(RESNET18_PARAMETERS) for b in ("running_mean", "running_var")}
    assert buffers == expected | {f"{bn}.num_batches_tracked" for bn in _bn_names(RESNET18_PARAMETERS)}
    assert len(_bn_names(RESNET18_PARAMETERS)) == 20


def test_frozen_resnet18_keeps_the_names_as_buffers() -> None:
    model = ResNet("r18", frozen_bn=True)
    convs = [n for n in RESNET18_PARAMETERS if "conv" in n or "downsample.0" in n]
    assert [n for n, _ in model.named_parameters()] == convs
    bn_keys = {
        f"{bn}.{b}" for bn in _bn_names(RESNET18_PARAMETERS) for b in ("weight", "bias", "running_mean", "running_var")
    }
    assert set(model.state_dict()) == set(convs) | bn_keys


@pytest.mark.parametrize(
    ("name", "parameters_with_fc"),
    [("r18", 62), ("r34", 110), ("r50", 161)],  # len(list(torchvision.models.resnetXX().parameters()))
)
def test_parameter_tensor_counts_match_torchvision(name: str, parameters_with_fc: int) -> None:
    assert len(list(ResNet(name, frozen_bn=False).parameters())) == parameters_with_fc - 2


@pytest.mark.parametrize(
    ("name", "key", "shape"),
    [
        ("r18", "layer3.0.downsample.1.running_var", (256,)),
        ("r18", "layer2.0.conv1.weight", (128, 64, 3, 3)),
        ("r34", "layer3.5.conv2.weight", (256, 256, 3, 3)),
        ("r50", "layer1.0.downsample.0.weight", (256, 64, 1, 1)),
        ("r50", "layer2.0.conv2.weight", (128, 128, 3, 3)),  # v1.5: stride in the 3x3
        ("r50", "layer4.2.bn3.running_mean", (2048,)),
    ],
)
def test_spot_checked_names_and_shapes(name: str, key: str, shape: tuple[int, ...]) -> None:
    assert tuple(ResNet(name).state_dict()[key].shape) == shape


@pytest.mark.parametrize(("name", "channels"), [("r18", (64, 128, 256, 512)), ("r50", (256, 512, 1024, 2048))])
def test_outputs_are_c2_to_c5_at_strides_4_to_32(name: str, channels: tuple[int, ...]) -> None:
    model = ResNet(name).eval()
    with torch.inference_mode():
        feats = model(torch.randn(1, 3, 64, 96))
    assert model.out_channels == channels
    assert [tuple(f.shape) for f in feats] == [
        (1, c, 64 // s, 96 // s) for c, s in zip(channels, (4, 8, 16, 32), strict=True)
    ]


def test_stride_sits_in_the_3x3_of_the_bottleneck() -> None:
    block = ResNet("r50").layer2[0]
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2) and block.downsample[0].stride == (2, 2)


@pytest.mark.parametrize("frozen_bn", [True, False])
def test_imagenet_checkpoint_loads_into_color_encoder(frozen_bn: bool) -> None:
    sd = torchvision_like_state_dict((2, 2, 2, 2), bottleneck=False)
    model = ResNet("r18", in_channels=3, frozen_bn=frozen_bn)
    load_imagenet_state_dict(model, sd)
    assert torch.equal(model.conv1.weight, sd["conv1.weight"])
    assert torch.equal(model.layer3[0].downsample[1].running_var, sd["layer3.0.downsample.1.running_var"])
    assert torch.equal(model.layer4[1].bn2.weight, sd["layer4.1.bn2.weight"])


def test_depth_encoder_gets_rgb_mean_of_first_conv() -> None:
    sd = torchvision_like_state_dict((3, 4, 6, 3), bottleneck=True)
    model = ResNet("r50", in_channels=1)
    load_imagenet_state_dict(model, sd)
    w = sd["conv1.weight"]
    expected = (w[:, 0] + w[:, 1] + w[:, 2]) / 3
    assert model.conv1.weight.shape == (64, 1, 7, 7)
    torch.testing.assert_close(model.conv1.weight[:, 0], expected)
    assert torch.equal(model.layer4[2].conv3.weight, sd["layer4.2.conv3.weight"])


def test_wrong_architecture_is_rejected_naming_keys() -> None:
    sd = torchvision_like_state_dict((3, 4, 6, 3), bottleneck=False)  # a ResNet-34
    with pytest.raises(ValueError, match=r"not a torchvision r18.*layer1\.2"):
        load_imagenet_state_dict(ResNet("r18"), sd)


def test_wrong_shapes_are_rejected() -> None:
    sd = torchvision_like_state_dict((2, 2, 2, 2), bottleneck=False)
    sd["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(ValueError, match=r"layer1\.0\.conv1\.weight: expected \(64, 64, 3, 3\), got \(64, 64, 1, 1\)"):
        load_imagenet_state_dict(ResNet("r18"), sd)


def test_unknown_architecture_name() -> None:
    with pytest.raises(ValueError, match="r101"):
        ResNet("r101")


def test_frozen_bn_equals_batchnorm_formula_and_has_no_parameters() -> None:
    g = torch.Generator().manual_seed(1)
    bn = FrozenBatchNorm2d(4)
    for name in ("weight", "bias", "running_mean"):
        getattr(bn, name).copy_(torch.randn(4, generator=g))
    bn.running_var.copy_(torch.rand(4, generator=g) + 0.1)
    x = torch.randn(2, 4, 3, 5, generator=g)
    mean, var, w, b = (t.view(1, 4, 1, 1) for t in (bn.running_mean, bn.running_var, bn.weight, bn.bias))
    expected = (x - mean) / torch.sqrt(var + 1e-5) * w + b
    torch.testing.assert_close(bn(x), expected)
    assert list(bn.parameters()) == []
    # Training mode changes nothing (statistics stay frozen), unlike nn.BatchNorm2d.
    reference = nn.BatchNorm2d(4).train()
    reference.load_state_dict({**reference.state_dict(), **bn.state_dict()})
    torch.testing.assert_close(bn.train()(x), reference.eval()(x))


def test_frozen_bn_follows_autocast_dtype() -> None:
    bn = FrozenBatchNorm2d(3)
    assert bn(torch.ones(1, 3, 2, 2, dtype=torch.bfloat16)).dtype == torch.bfloat16
