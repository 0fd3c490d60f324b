"""Deletion and insertion AUC (Petsiuk et al. 2018, "RISE", section 4.1).

Pixels are ranked by the heatmap (most important first). *Deletion* starts
from the image and replaces pixels with a baseline (black or a blurred copy),
*insertion* starts from the blurred image and puts the original pixels back,
``pixels_per_step`` at a time. The target probability traced along the way is
integrated over the fraction of pixels changed (trapezoid rule, in [0, 1]).
A faithful map drops the probability fast when deleting (**lower deletion
AUC**) and restores it fast when inserting (**higher insertion AUC**).

RISE changes 224 pixels per step at 224 px (224 steps). Every step is a
forward pass, so the number of steps is a setting: fewer steps give the same
curve sampled more coarsely.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.build import LoadedModel
from ..progress import Progress
from .base import class_probabilities

RISE_STEPS = 224  # the protocol: 224 px changed per step at 224×224


@dataclass(frozen=True)
class FaithfulnessConfig:
    steps: int = RISE_STEPS
    deletion_baseline: str = "zeros"  # "zeros" (black) or "blur"


@dataclass(frozen=True)
class Faithfulness:
    deletion_auc: float | None  # None: not scored (a map with no positive evidence)
    insertion_auc: float | None
    deletion_curve: np.ndarray  # (steps + 1,) target probability
    insertion_curve: np.ndarray


def blurred(image: np.ndarray) -> np.ndarray:
    """RISE's blur: Gaussian, σ = 5, 11-tap kernel, per colour channel."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.asarray(image, np.float32), sigma=(5, 5, 0), truncate=1.0)


def auc(curve: np.ndarray) -> float:
    """Area under a curve sampled evenly over [0, 1] (trapezoid rule)."""
    curve = np.asarray(curve, np.float64)
    return float(np.trapezoid(curve, dx=1.0 / (len(curve) - 1)))


def _sequence(start: np.ndarray, finish: np.ndarray, order: np.ndarray, steps: int) -> np.ndarray:
    """steps + 1 images: ``start`` with the first k·n/steps pixels of ``order`` taken from ``finish``."""
    h, w, c = start.shape
    flat_start, flat_finish = start.reshape(-1, c), finish.reshape(-1, c)
    out = np.empty((steps + 1, h * w, c), np.float32)
    bounds = np.ceil(np.linspace(0, h * w, steps + 1)).astype(int)
    current = flat_start.copy()
    prev = 0
    for k, b in enumerate(bounds):
        idx = order[prev:b]
        current[idx] = flat_finish[idx]
        out[k] = current
        prev = b
    return out.reshape(steps + 1, h, w, c)


def faithfulness(loaded: LoadedModel, image: np.ndarray, heatmap: np.ndarray, target: int,
                 config: FaithfulnessConfig = FaithfulnessConfig(), progress: Progress | None = None) -> Faithfulness:
    """Deletion and insertion curves and AUCs of one heatmap for one image and target class."""
    image = np.asarray(image, np.float32)
    order = np.argsort(-np.asarray(heatmap, np.float64).ravel(), kind="stable")
    blur = blurred(image)
    removed = np.zeros_like(image) if config.deletion_baseline == "zeros" else blur
    batch = np.concatenate([_sequence(image, removed, order, config.steps), _sequence(blur, image, order, config.steps)])
    probs = class_probabilities(loaded, batch, progress=progress)[:, target]
    deletion, insertion = probs[: config.steps + 1], probs[config.steps + 1 :]
    return Faithfulness(auc(deletion), auc(insertion), deletion, insertion)
