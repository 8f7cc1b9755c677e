"""The pyramid geometry of the depth-aware Panoptic FCN, written down once: every stride, level choice and the
input padding follow from the FPN's levels P2..P7 (stride 2^i of level Pi), and the network, the training
targets, the model and the ONNX export all read them here, so that they cannot drift apart.
"""

from __future__ import annotations

FPN_STRIDES = (4, 8, 16, 32, 64, 128)  # P2..P5 from the ResNet's C2..C5, P6 and P7 by stride-2 convs on P5
ENCODER_LEVELS = slice(0, 4)  # P2..P5: summed at stride 4 by the feature encoder
HEAD_LEVELS = slice(1, 6)  # P3..P7: the position and kernel heads, one output per level

ENCODER_STRIDES = FPN_STRIDES[ENCODER_LEVELS]
HEAD_STRIDES = FPN_STRIDES[HEAD_LEVELS]
NUM_HEAD_LEVELS = len(HEAD_STRIDES)
FEATURE_STRIDE = ENCODER_STRIDES[0]  # of PanopticOutputs.features, the grid every mask lives on
SIZE_DIVISOR = FPN_STRIDES[-1]  # inputs are zero-padded (bottom/right) to a multiple of P7's stride


def level_name(stride: int) -> str:
    """ "p3" for stride 8: the level Pi has stride 2^i."""
    return f"p{stride.bit_length() - 1}"


def padded_size(height: int, width: int) -> tuple[int, int]:
    """The size the network actually sees for an input of ``height`` x ``width`` (targets must match it).

    Rounded up by floor division, not ``%``: under torch.compile with dynamic shapes the size is symbolic, and
    inductor cannot turn a symbolic modulo into tensor code (it fails on the coordinate grids that use it)."""
    up = SIZE_DIVISOR - 1
    return (height + up) // SIZE_DIVISOR * SIZE_DIVISOR, (width + up) // SIZE_DIVISOR * SIZE_DIVISOR
