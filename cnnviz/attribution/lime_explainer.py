"""LIME (Ribeiro et al. 2016) through the ``lime`` package's image explainer.

Heatmap: each superpixel's weight in LIME's local linear model for the target
(positive part). The boundaries view is LIME's own: the 5 superpixels that
speak most for the target, outlined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..progress import Progress
from .base import Attributor, MethodConfig, counting_classifier, positive_part


@dataclass(frozen=True)
class LimeConfig(MethodConfig):
    method: str = "lime"
    samples: int = 1000  # perturbed images, each one forward pass
    features: int = 5  # superpixels outlined in the boundaries view
    seed: int = 0


class Lime(Attributor):
    config_class = LimeConfig
    slow = True

    def __call__(self, images: np.ndarray, targets: Sequence[int], progress: Progress | None = None) -> np.ndarray:
        return self.with_extras(images, targets, progress)[0]

    def with_extras(self, images: np.ndarray, targets: Sequence[int],
                    progress: Progress | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        try:
            from lime import lime_image
        except ImportError as exc:
            raise ImportError("LIME needs the 'lime' package: pip install lime") from exc
        from skimage.segmentation import mark_boundaries

        lime_image.tqdm = lambda rows, **_: rows  # lime 0.2 always draws its own tqdm bar; cnnviz reports progress itself

        cfg = self.config
        total = len(images) * cfg.samples
        maps, boundaries = [], []
        for i, (img, target) in enumerate(zip(images, targets)):
            classify = counting_classifier(self.loaded, progress, i, cfg.samples, total)
            explainer = lime_image.LimeImageExplainer(random_state=cfg.seed)
            # uint8 in: quickshift's Lab conversion expects [0, 1] floats or uint8, not 0–255 floats.
            pixels = np.clip(np.round(img), 0, 255).astype(np.uint8)
            exp = explainer.explain_instance(pixels, classify, labels=(int(target),), top_labels=None,
                                             num_samples=cfg.samples, batch_size=64, random_seed=cfg.seed)
            lookup = np.zeros(exp.segments.max() + 1)
            for segment, weight in exp.local_exp[int(target)]:
                lookup[segment] = weight
            maps.append(lookup[exp.segments])
            _, mask = exp.get_image_and_mask(int(target), positive_only=True, num_features=cfg.features, hide_rest=False)
            boundaries.append((mark_boundaries(pixels / 255.0, mask, color=(1, 1, 0)) * 255).astype(np.uint8))
        return positive_part(np.stack(maps)), {"boundaries": np.stack(boundaries)}
