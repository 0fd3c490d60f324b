"""Batched forward passes: ImageNet top-k predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import WeightsUnavailableError
from ..progress import Progress
from .build import LoadedModel
from .labels import imagenet_labels


@dataclass(frozen=True)
class Prediction:
    class_id: int
    label: str
    probability: float

    def to_dict(self) -> dict:
        return {"class_id": self.class_id, "label": self.label, "probability": self.probability}


def predict_batches(loaded: LoadedModel, images: np.ndarray, batch_size: int = 32,
                    progress: Progress | None = None) -> np.ndarray:
    """Class probabilities for RGB images (N, H, W, 3) in [0, 255]."""
    spec = loaded.spec
    if not spec.has_classifier:
        raise WeightsUnavailableError(f"{spec.name} has convolutional features only, no ImageNet classifier: it cannot predict labels")
    if not loaded.trained:
        raise WeightsUnavailableError(f"{spec.name} has random weights here: its predictions would be meaningless")
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        out.append(np.asarray(loaded.model.predict_on_batch(batch.astype(np.float32))))
        if progress:
            progress(min(start + batch_size, len(images)), len(images))
    return np.concatenate(out) if out else np.zeros((0, 1000), np.float32)


def top_k(probabilities: np.ndarray, k: int = 5) -> list[list[Prediction]]:
    """The k most probable classes of each row, with names."""
    labels = imagenet_labels()
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [[Prediction(int(c), labels[c], float(row[c])) for c in idx] for row, idx in zip(probabilities, order)]
