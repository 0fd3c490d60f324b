"""Occlusion (Zeiler & Fergus 2014): how much the target probability drops when a patch is hidden.

Not in tf-keras-vis; it is a few lines over batched forward passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..progress import Progress
from .base import Attributor, MethodConfig, class_probabilities, positive_part


@dataclass(frozen=True)
class OcclusionConfig(MethodConfig):
    method: str = "occlusion"
    patch: int = 32  # pixels at the model's input size
    stride: int = 16
    fill: float = 127.5  # mean gray


def patch_origins(size: int, patch: int, stride: int) -> list[int]:
    """Top-left offsets that tile ``size`` with ``patch``-wide windows, the last one flush with the edge."""
    starts = list(range(0, max(size - patch, 0) + 1, stride))
    if starts[-1] + patch < size:
        starts.append(size - patch)
    return starts


class Occlusion(Attributor):
    config_class = OcclusionConfig
    slow = False

    def __call__(self, images: np.ndarray, targets: Sequence[int], progress: Progress | None = None) -> np.ndarray:
        cfg = self.config
        n, h, w, _ = images.shape
        ys, xs = patch_origins(h, cfg.patch, cfg.stride), patch_origins(w, cfg.patch, cfg.stride)
        maps = np.zeros((n, h, w), np.float64)
        total = n * len(ys) * len(xs)
        for i, (img, target) in enumerate(zip(images, targets)):
            base = class_probabilities(self.loaded, img[None])[0, target]
            masked = np.repeat(img[None], len(ys) * len(xs), axis=0)
            boxes = [(y, x) for y in ys for x in xs]
            for j, (y, x) in enumerate(boxes):
                masked[j, y : y + cfg.patch, x : x + cfg.patch] = cfg.fill
            probs = class_probabilities(self.loaded, masked, progress=progress, done=i * len(boxes), total=total)[:, target]
            drop, count = np.zeros((h, w)), np.zeros((h, w))
            for (y, x), d in zip(boxes, base - probs):
                drop[y : y + cfg.patch, x : x + cfg.patch] += d
                count[y : y + cfg.patch, x : x + cfg.patch] += 1
            maps[i] = drop / np.maximum(count, 1)
        return positive_part(maps)
