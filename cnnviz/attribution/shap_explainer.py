"""SHAP (Lundberg & Lee 2017): shap's Partition explainer with an Image masker.

Blurred-out regions stand in for missing features ("blur(16,16)": about 15×
faster than "inpaint_telea" at the same max_evals). The heatmap is the positive
part of the SHAP values for the target, summed over colour channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..progress import Progress
from .base import Attributor, MethodConfig, counting_classifier, positive_part


@dataclass(frozen=True)
class ShapConfig(MethodConfig):
    method: str = "shap"
    max_evals: int = 500  # model evaluations per image
    masker: str = "blur(16,16)"


class Shap(Attributor):
    config_class = ShapConfig
    slow = True

    def __call__(self, images: np.ndarray, targets: Sequence[int], progress: Progress | None = None) -> np.ndarray:
        try:
            import shap
        except ImportError as exc:
            raise ImportError("SHAP needs the 'shap' package (and opencv-python-headless for its Image masker)") from exc

        cfg = self.config
        total = len(images) * cfg.max_evals
        maps = []
        for i, (img, target) in enumerate(zip(images, targets)):
            f = counting_classifier(self.loaded, progress, i, cfg.max_evals, total)
            masker = shap.maskers.Image(cfg.masker, img.shape)
            explainer = shap.Explainer(f, masker, algorithm="partition")
            values = explainer(np.asarray(img[None], np.float32), max_evals=cfg.max_evals, batch_size=64,
                               outputs=np.array([int(target)]), silent=True).values
            maps.append(np.asarray(values)[0, ..., 0].sum(axis=-1))
        return positive_part(np.stack(maps))
