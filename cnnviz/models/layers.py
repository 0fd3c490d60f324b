"""Small Keras layers shared by the model builders."""

from __future__ import annotations

import keras
from keras import ops

# Per-mode constants for turning RGB pixels in [0, 255] into network input.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

PREPROCESS_MODES = ("lite", "torch", "caffe", "tf", "raw")


@keras.saving.register_keras_serializable(package="cnnviz")
class Preprocess(keras.layers.Layer):
    """Map RGB pixels in [0, 255] to what a network was trained on.

    Putting this inside the graph means every cnnviz model takes plain RGB
    images, so attribution and feature visualization work in pixel space.

    Modes: ``lite`` (x − 127) / 128 (EfficientNet-Lite); ``torch`` x / 255
    normalised by ImageNet mean/std; ``caffe`` RGB→BGR minus the ImageNet BGR
    mean; ``tf`` x / 127.5 − 1; ``raw`` unchanged (models that rescale inside).
    """

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESS_MODES:
            raise ValueError(f"unknown preprocessing {mode!r}; valid: {', '.join(PREPROCESS_MODES)}")
        self.mode = mode

    def call(self, x):
        if self.mode == "lite":
            return (x - 127.0) / 128.0
        if self.mode == "torch":
            return (x / 255.0 - ops.convert_to_tensor(_IMAGENET_MEAN)) / ops.convert_to_tensor(_IMAGENET_STD)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.convert_to_tensor(_CAFFE_BGR_MEAN)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        return x

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="cnnviz")
class GridPool(keras.layers.Layer):
    """Adaptive average pooling to a ``grid × grid`` map, flattened (C·grid² values).

    Bin edges follow PyTorch's AdaptiveAvgPool2d, so odd sizes (7×7) split as
    [0, 4) and [3, 7): every input cell is used.
    """

    def __init__(self, grid: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.grid = grid

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        cells = []
        for i in range(self.grid):
            h0, h1 = (i * h) // self.grid, -(-((i + 1) * h) // self.grid)
            for j in range(self.grid):
                w0, w1 = (j * w) // self.grid, -(-((j + 1) * w) // self.grid)
                cells.append(ops.mean(x[:, h0:h1, w0:w1, :], axis=(1, 2)))
        return ops.concatenate(cells, axis=-1)

    def get_config(self):
        return {**super().get_config(), "grid": self.grid}
