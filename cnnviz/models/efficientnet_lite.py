"""EfficientNet-Lite in Keras, built from a lukemelas-style PyTorch state dict.

Lite variants are EfficientNet-B0's block layout without squeeze-excite, with
ReLU6 and BN eps 1e-3; stem (32) and head (1280) are never scaled. The block
list (kernel, expansion, channels, repeats) is read from the tensor names and
shapes; only the per-stage strides come from the B0 layout.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

import keras
import numpy as np

from .layers import Preprocess
from .torch_convert import batchnorm_weights, conv_kernel, dense_weights, depthwise_kernel

# Strides of EfficientNet-B0's seven stages.
_B0_STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
_BN_EPS = 1e-3


@dataclass(frozen=True)
class BlockDef:
    index: int  # position in the state dict: _blocks.{index}
    stage: int  # 1-based stage number
    letter: str  # a, b, c... within the stage
    in_ch: int
    out_ch: int
    expanded_ch: int
    kernel: int
    stride: int

    @property
    def name(self) -> str:
        return f"block{self.stage}{self.letter}"


def infer_blocks(state: dict[str, np.ndarray]) -> list[BlockDef]:
    """Read the MBConv block list from a state dict's names and shapes."""
    indices = sorted({int(m.group(1)) for k in state if (m := re.match(r"_blocks\.(\d+)\.", k))})
    raw = []
    for i in indices:
        dw = state[f"_blocks.{i}._depthwise_conv.weight"]  # (C, 1, k, k)
        proj = state[f"_blocks.{i}._project_conv.weight"]  # (out, C, 1, 1)
        expand = state.get(f"_blocks.{i}._expand_conv.weight")
        in_ch = expand.shape[1] if expand is not None else dw.shape[0]
        raw.append((i, in_ch, proj.shape[0], dw.shape[0], dw.shape[2]))
    # A new stage starts wherever the output width changes.
    blocks: list[BlockDef] = []
    stage, pos, prev_out = 0, 0, None
    for i, in_ch, out_ch, exp_ch, k in raw:
        if out_ch != prev_out:
            stage, pos = stage + 1, 0
        else:
            pos += 1
        if stage > len(_B0_STAGE_STRIDES):
            raise ValueError("state dict has more stages than the EfficientNet-B0 layout")
        stride = _B0_STAGE_STRIDES[stage - 1] if pos == 0 else 1
        blocks.append(BlockDef(i, stage, string.ascii_lowercase[pos], in_ch, out_ch, exp_ch, k, stride))
        prev_out = out_ch
    if stage != len(_B0_STAGE_STRIDES):
        raise ValueError(f"expected 7 stages, found {stage}")
    return blocks


def _conv(x, filters: int, kernel: int, stride: int, name: str):
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=name)(x)


def _bn(x, name: str):
    return keras.layers.BatchNormalization(epsilon=_BN_EPS, name=name)(x)


def _relu6(x, name: str):
    return keras.layers.ReLU(max_value=6.0, name=name)(x)


def build_architecture(blocks: list[BlockDef], input_size: int, num_classes: int = 1000) -> keras.Model:
    """EfficientNet-Lite graph (RGB 0–255 input) with cnnviz layer names."""
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = Preprocess("lite", name="preprocess")(inputs)
    x = _relu6(_bn(_conv(x, 32, 3, 2, "stem_conv"), "stem_bn"), "stem_relu")
    for b in blocks:
        shortcut = x
        if b.expanded_ch != b.in_ch:
            x = _relu6(_bn(_conv(x, b.expanded_ch, 1, 1, f"{b.name}_expand_conv"), f"{b.name}_expand_bn"), f"{b.name}_expand_relu")
        x = keras.layers.DepthwiseConv2D(b.kernel, strides=b.stride, padding="same", use_bias=False, name=f"{b.name}_dwconv")(x)
        x = _relu6(_bn(x, f"{b.name}_dw_bn"), f"{b.name}_dw_relu")
        x = _conv(x, b.out_ch, 1, 1, f"{b.name}_project_conv")
        residual = b.stride == 1 and b.in_ch == b.out_ch
        x = _bn(x, f"{b.name}_project_bn" if residual else f"{b.name}_out")
        if residual:
            x = keras.layers.Add(name=f"{b.name}_out")([x, shortcut])
    x = _relu6(_bn(_conv(x, 1280, 1, 1, "head_conv"), "head_bn"), "head_relu")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name="efficientnet_lite")


def load_state_dict(model: keras.Model, blocks: list[BlockDef], state: dict[str, np.ndarray]) -> None:
    """Copy PyTorch tensors into the matching Keras layers."""
    model.get_layer("stem_conv").set_weights([conv_kernel(state["_conv_stem.weight"])])
    model.get_layer("stem_bn").set_weights(batchnorm_weights(state, "_bn0"))
    for b in blocks:
        p = f"_blocks.{b.index}"
        if b.expanded_ch != b.in_ch:
            model.get_layer(f"{b.name}_expand_conv").set_weights([conv_kernel(state[f"{p}._expand_conv.weight"])])
            model.get_layer(f"{b.name}_expand_bn").set_weights(batchnorm_weights(state, f"{p}._bn0"))
        dw = state[f"{p}._depthwise_conv.weight"]  # (C, 1, k, k) -> (k, k, C, 1)
        model.get_layer(f"{b.name}_dwconv").set_weights([depthwise_kernel(dw)])
        model.get_layer(f"{b.name}_dw_bn").set_weights(batchnorm_weights(state, f"{p}._bn1"))
        model.get_layer(f"{b.name}_project_conv").set_weights([conv_kernel(state[f"{p}._project_conv.weight"])])
        residual = b.stride == 1 and b.in_ch == b.out_ch
        model.get_layer(f"{b.name}_project_bn" if residual else f"{b.name}_out").set_weights(batchnorm_weights(state, f"{p}._bn2"))
    model.get_layer("head_conv").set_weights([conv_kernel(state["_conv_head.weight"])])
    model.get_layer("head_bn").set_weights(batchnorm_weights(state, "_bn1"))
    model.get_layer("predictions").set_weights(dense_weights(state, "_fc"))
