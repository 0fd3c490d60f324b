"""The interface every attribution method implements, and helpers they share.

An :class:`Attributor` is built once per model (it may trace TF functions, so
reuse it) and called on prepared images: float32 ``(N, S, S, 3)`` RGB in
[0, 255] at the model's input size, with one ImageNet target class per image.
It returns float32 heatmaps ``(N, S, S)`` in [0, 1], 1 = strongest evidence
*for* the target. Methods with signed scores keep the positive part.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..models.build import LoadedModel
from ..progress import Progress



@dataclass(frozen=True)
class MethodConfig:
    """Settings of one method; subclasses add theirs. Part of the cache key."""

    method: str = ""


class Attributor(ABC):
    """One attribution method bound to one model."""

    config_class: type[MethodConfig] = MethodConfig
    slow: bool = False  # perturbation methods: run in the background in the UI

    def __init__(self, loaded: LoadedModel, config: MethodConfig | None = None):
        self.loaded = loaded
        self.config = config or self.config_class()

    @abstractmethod
    def __call__(self, images: np.ndarray, targets: Sequence[int], progress: Progress | None = None) -> np.ndarray:
        """Heatmaps ``(N, H, W)`` in [0, 1] for images ``(N, H, W, 3)`` and their target classes."""

    def with_extras(self, images: np.ndarray, targets: Sequence[int],
                    progress: Progress | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Heatmaps plus extra views of the same call (e.g. LIME's boundaries); no state is kept, so
        one attributor can serve several sessions at once."""
        return self(images, targets, progress), {}


def positive_part(maps: np.ndarray) -> np.ndarray:
    """Scale each signed map's positive part to [0, 1].

    A map with no positive value stays all zero ("no positive evidence": min–max scaling would paint
    the least negative region hot), and a map with NaN or inf stays as it is, so :func:`heatmap_evidence`
    reports it instead of drawing a blank.
    """
    out = np.empty(maps.shape, np.float32)
    for i, m in enumerate(np.asarray(maps, np.float64)):
        if not np.isfinite(m).all():
            out[i] = m
            continue
        top = m.max()
        out[i] = np.clip(m, 0, None) / top if top > 0 else 0.0
    return out


EVIDENCE_NOTES = {
    "none": "no positive evidence for the target class",
    "invalid": "no map: the method returned NaN or infinite values",
}


def heatmap_evidence(heatmap: np.ndarray) -> str:
    """"positive" for a usable map, "none" when nothing in it supports the target, "invalid" for NaN/inf."""
    heatmap = np.asarray(heatmap)
    if not np.isfinite(heatmap).all():
        return "invalid"
    return "positive" if heatmap.size and heatmap.max() > 0 else "none"


def class_probabilities(loaded: LoadedModel, images: np.ndarray, batch_size: int = 64,
                        progress: Progress | None = None, done: int = 0, total: int | None = None) -> np.ndarray:
    """Softmax outputs for many images, in batches (``progress`` counts images)."""
    total = total or len(images)
    out = []
    for start in range(0, len(images), batch_size):
        out.append(np.asarray(loaded.model.predict_on_batch(np.asarray(images[start : start + batch_size], np.float32))))
        if progress:
            progress(done + min(start + batch_size, len(images)), total)
    return np.concatenate(out) if out else np.zeros((0, 1000), np.float32)


def counting_classifier(loaded: LoadedModel, progress: Progress | None, image_index: int, budget: int,
                        total: int) -> Callable[[np.ndarray], np.ndarray]:
    """A batch → probabilities function for perturbation explainers (LIME, SHAP) that reports
    progress as image ``image_index`` spends its ``budget`` of model evaluations out of ``total``."""
    seen = 0

    def classify(batch: np.ndarray) -> np.ndarray:
        nonlocal seen
        probs = class_probabilities(loaded, batch)
        seen += len(batch)
        if progress:
            progress(image_index * budget + min(seen, budget), total)
        return probs

    return classify
