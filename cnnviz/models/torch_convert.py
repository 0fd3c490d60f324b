"""Turning PyTorch tensor layouts into Keras ones (shared by the model ports)."""

from __future__ import annotations

import numpy as np


def conv_kernel(w: np.ndarray) -> np.ndarray:
    """Conv2d weight (out, in, kh, kw) → Keras Conv2D kernel (kh, kw, in, out)."""
    return np.transpose(w, (2, 3, 1, 0))


def depthwise_kernel(w: np.ndarray) -> np.ndarray:
    """Depthwise weight (C, 1, kh, kw) → Keras DepthwiseConv2D kernel (kh, kw, C, 1)."""
    return np.transpose(w, (2, 3, 0, 1))


def batchnorm_weights(state: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    """BatchNorm2d (weight, bias, running mean, running var) in Keras' order."""
    return [state[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]


def dense_weights(state: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    """Linear (out, in) weight and bias → Keras Dense [kernel (in, out), bias]."""
    return [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]
