"""torchvision's ImageNet MobileNetV2 rebuilt in Keras from its state dict.

PyTorch pads stride-2 3×3 convs symmetrically (padding=1); Keras 'same' pads
bottom/right only for even inputs. We use explicit ZeroPadding2D + 'valid' so
the numbers match the PyTorch reference. BN eps is torchvision's 1e-5.
"""

from __future__ import annotations

import keras
import numpy as np

from .layers import Preprocess
from .torch_convert import batchnorm_weights, conv_kernel, dense_weights, depthwise_kernel

# (expansion t, output channels c, repeats n, first stride s) — the MobileNetV2 paper's table.
_INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
_BN_EPS = 1e-5


def block_strides() -> list[int]:
    """Stride of features.1 … features.17, from the paper's table."""
    return [s if i == 0 else 1 for _, _, n, s in _INVERTED_RESIDUAL_SETTING for i in range(n)]


def _conv(x, filters, kernel, stride, name):
    if kernel > 1:
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=False, name=name)(x)


def _dwconv(x, stride, name):
    x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return keras.layers.DepthwiseConv2D(3, strides=stride, padding="valid", use_bias=False, name=name)(x)


def _bn(x, name):
    return keras.layers.BatchNormalization(epsilon=_BN_EPS, name=name)(x)


def _relu6(x, name):
    return keras.layers.ReLU(max_value=6.0, name=name)(x)


def build_architecture(state: dict[str, np.ndarray], input_size: int = 224) -> keras.Model:
    """Keras graph (RGB 0–255 input); widths are read from the state dict."""
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = Preprocess("torch", name="preprocess")(inputs)
    stem = state["features.0.0.weight"]
    x = _relu6(_bn(_conv(x, stem.shape[0], 3, 2, "stem_conv"), "stem_bn"), "stem_relu")
    for i, stride in enumerate(block_strides(), start=1):
        name = f"block{i}"
        p = f"features.{i}.conv"
        in_ch = x.shape[-1]
        shortcut = x
        if f"{p}.0.0.weight" in state and state[f"{p}.0.0.weight"].shape[1] != 1:  # expansion 1x1
            exp = state[f"{p}.0.0.weight"].shape[0]
            x = _relu6(_bn(_conv(x, exp, 1, 1, f"{name}_expand_conv"), f"{name}_expand_bn"), f"{name}_expand_relu")
        x = _relu6(_bn(_dwconv(x, stride, f"{name}_dwconv"), f"{name}_dw_bn"), f"{name}_dw_relu")
        out_ch = state[_project_key(state, i)].shape[0]
        x = _conv(x, out_ch, 1, 1, f"{name}_project_conv")
        residual = stride == 1 and in_ch == out_ch
        x = _bn(x, f"{name}_project_bn" if residual else f"{name}_out")
        if residual:
            x = keras.layers.Add(name=f"{name}_out")([x, shortcut])
    head = state["features.18.0.weight"]
    x = _relu6(_bn(_conv(x, head.shape[0], 1, 1, "head_conv"), "head_bn"), "head_relu")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dense(state["classifier.1.weight"].shape[0], activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name="mobilenet_v2_tv")


def _project_key(state, i: int) -> str:
    # features.1 (no expansion): conv.0 = dw ConvBNReLU, conv.1 = project, conv.2 = BN.
    # features.2+ : conv.0 = expand, conv.1 = dw, conv.2 = project, conv.3 = BN.
    return f"features.{i}.conv.1.weight" if i == 1 else f"features.{i}.conv.2.weight"


def load_state_dict(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    """Copy torchvision tensors into the matching Keras layers."""
    model.get_layer("stem_conv").set_weights([conv_kernel(state["features.0.0.weight"])])
    model.get_layer("stem_bn").set_weights(batchnorm_weights(state, "features.0.1"))
    n_blocks = len(block_strides())
    for i in range(1, n_blocks + 1):
        name, p = f"block{i}", f"features.{i}.conv"
        dw_idx = 0 if i == 1 else 1
        if i > 1:
            model.get_layer(f"{name}_expand_conv").set_weights([conv_kernel(state[f"{p}.0.0.weight"])])
            model.get_layer(f"{name}_expand_bn").set_weights(batchnorm_weights(state, f"{p}.0.1"))
        model.get_layer(f"{name}_dwconv").set_weights([depthwise_kernel(state[f"{p}.{dw_idx}.0.weight"])])
        model.get_layer(f"{name}_dw_bn").set_weights(batchnorm_weights(state, f"{p}.{dw_idx}.1"))
        model.get_layer(f"{name}_project_conv").set_weights([conv_kernel(state[_project_key(state, i)])])
        bn_prefix = f"{p}.2" if i == 1 else f"{p}.3"
        residual = f"{name}_project_bn" in {layer.name for layer in model.layers}
        bn_layer = f"{name}_project_bn" if residual else f"{name}_out"
        model.get_layer(bn_layer).set_weights(batchnorm_weights(state, bn_prefix))
    model.get_layer("head_conv").set_weights([conv_kernel(state["features.18.0.weight"])])
    model.get_layer("head_bn").set_weights(batchnorm_weights(state, "features.18.1"))
    model.get_layer("predictions").set_weights(dense_weights(state, "classifier.1"))


