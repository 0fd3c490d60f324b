"""Run a method on one image, score its faithfulness, cache the result."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import cache
from ..errors import CnnvizError, UnknownNameError, WeightsUnavailableError
from ..models.build import LoadedModel, model_identity
from ..models.inference import Prediction, top_k
from ..progress import Progress, scaled
from .base import EVIDENCE_NOTES, Attributor, MethodConfig, class_probabilities, heatmap_evidence
from .faithfulness import Faithfulness, FaithfulnessConfig, faithfulness
from .gradients import (
    CamConfig,
    GradCam,
    GradCamPlusPlus,
    SaliencyConfig,
    ScoreCam,
    ScoreCamConfig,
    SmoothGrad,
    SmoothGradConfig,
    VanillaSaliency,
)
from .lime_explainer import Lime, LimeConfig
from .occlusion import Occlusion, OcclusionConfig
from .shap_explainer import Shap, ShapConfig

ATTRIBUTION_VERSION = 2  # bump when a method's output changes: old results become misses (2: evidence, no min-max)

METHODS: dict[str, tuple[type[Attributor], type[MethodConfig]]] = {
    "saliency": (VanillaSaliency, SaliencyConfig),
    "smoothgrad": (SmoothGrad, SmoothGradConfig),
    "gradcam": (GradCam, CamConfig),
    "gradcam++": (GradCamPlusPlus, CamConfig),
    "scorecam": (ScoreCam, ScoreCamConfig),
    "occlusion": (Occlusion, OcclusionConfig),
    "lime": (Lime, LimeConfig),
    "shap": (Shap, ShapConfig),
}


MINIMUMS = {"max_evals": 20}  # below this shap's Partition explainer cannot split the image once


def resolve_methods(methods: str | Sequence[str]) -> list[str]:
    """``"all"``, one name, a comma-separated string or a list → known method names."""
    names = list(METHODS) if methods == "all" else (methods.split(",") if isinstance(methods, str) else list(methods))
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise UnknownNameError(f"unknown method(s) {unknown}; choose from: all, {', '.join(METHODS)}")
    return names


def make_config(method: str, **params) -> MethodConfig:
    """A method's config with the given settings; settings another method uses are ignored."""
    (name,) = resolve_methods([method])
    cls = METHODS[name][1]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    chosen = {k: v for k, v in params.items() if k in fields and v is not None}
    for k, v in chosen.items():
        if isinstance(fields[k].default, int) and k not in ("seed", "max_channels") and int(v) < MINIMUMS.get(k, 1):
            raise CnnvizError(f"{name}: {k} must be at least {MINIMUMS.get(k, 1)}, got {v}")
    return cls(method=name, **chosen)


def get_attributor(loaded: LoadedModel, config: MethodConfig) -> Attributor:
    """One attributor per (model, config), kept with the model so traced TF functions are reused too."""
    if not loaded.spec.has_classifier:
        raise WeightsUnavailableError(f"{loaded.spec.name} has no ImageNet classifier: attribution needs a class to explain")
    if not loaded.trained:
        raise WeightsUnavailableError(f"{loaded.spec.name} has random weights here: its attributions would be meaningless")
    return loaded.memo(("attributor", config), lambda: METHODS[config.method][0](loaded, config))


def predictions(loaded: LoadedModel, image: np.ndarray, k: int = 5) -> list[Prediction]:
    """Top-k ImageNet classes of one prepared image."""
    return top_k(class_probabilities(loaded, image[None]), k)[0]


@dataclass
class Attribution:
    model: str
    method: str
    params: dict
    target: Prediction
    seconds: float  # the method alone, measured on first computation (cache hits keep it)
    heatmap: np.ndarray  # (H, W) float32 in [0, 1] at the model's input size; all zero unless evidence is positive
    faithfulness: Faithfulness  # AUCs are None (not scored) unless evidence is positive
    faithfulness_steps: int
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    evidence: str = "positive"  # "positive" | "none" (nothing supports the target) | "invalid" (NaN/inf map)

    @property
    def scored(self) -> bool:
        return self.evidence == "positive"

    def faithfulness_text(self, markdown: bool = False) -> str:
        """"deletion AUC … · insertion AUC …", or why there is no map to score."""
        if not self.scored:
            return EVIDENCE_NOTES[self.evidence]
        f, b = self.faithfulness, "**" if markdown else ""
        return f"deletion AUC {b}{f.deletion_auc:.3f}{b} ↓ · insertion AUC {b}{f.insertion_auc:.3f}{b} ↑"

    def to_dict(self) -> dict:
        return {"model": self.model, "method": self.method, "params": self.params, "target": self.target.to_dict(),
                "seconds": round(self.seconds, 3), "evidence": self.evidence,
                "evidence_note": EVIDENCE_NOTES.get(self.evidence), "deletion_auc": self.faithfulness.deletion_auc,
                "insertion_auc": self.faithfulness.insertion_auc, "faithfulness_steps": self.faithfulness_steps,
                "heatmap_shape": list(self.heatmap.shape)}


def attribution_key(loaded: LoadedModel, image: np.ndarray, config: MethodConfig, target: int,
                    faith: FaithfulnessConfig) -> str:
    """Cache key of one attribution: image content, model identity (weights sha256 …), settings, target."""
    return cache.make_key("attribution", image=hashlib.sha256(np.asarray(image, np.float32).tobytes()).hexdigest(),
                          identity=model_identity(loaded), config=dataclasses.asdict(config), target=target,
                          faithfulness=dataclasses.asdict(faith), version=ATTRIBUTION_VERSION)


def explain(loaded: LoadedModel, image: np.ndarray, method: str, target: int | None = None,
            params: dict | None = None, faith: FaithfulnessConfig = FaithfulnessConfig(),
            progress: Progress | None = None) -> Attribution:
    """Attribution of one prepared image (S, S, 3 in [0, 255]) for ``target`` (default: top-1).

    Cached per (image content, model, method, settings, target, faithfulness settings).
    """
    config = make_config(method, **(params or {}))
    attributor = get_attributor(loaded, config)
    image = np.asarray(image, np.float32)
    probs = class_probabilities(loaded, image[None])[0]
    target = int(np.argmax(probs)) if target is None else int(target)
    if not 0 <= target < len(probs):
        raise UnknownNameError(f"target class must be 0–{len(probs) - 1}, got {target}")
    prediction = Prediction(target, _label(target), float(probs[target]))
    key = attribution_key(loaded, image, config, target, faith)
    params_out = {k: v for k, v in dataclasses.asdict(config).items() if k != "method"}
    hit = cache.load_arrays("attribution", key)
    if hit is not None:
        arrays, meta = hit
        extras = {k.removeprefix("extra_"): v for k, v in arrays.items() if k.startswith("extra_")}
        faith_result = Faithfulness(meta["deletion_auc"], meta["insertion_auc"], arrays["deletion"], arrays["insertion"])
        return Attribution(loaded.spec.name, config.method, params_out, prediction, meta["seconds"], arrays["heatmap"],
                           faith_result, faith.steps, extras, meta["evidence"])
    slow_share = 0.8 if attributor.slow else 0.3
    started = time.perf_counter()
    maps, extras = attributor.with_extras(image[None], [target], scaled(progress, 0.0, slow_share))
    seconds = time.perf_counter() - started
    heatmap = maps[0].astype(np.float32)
    evidence = heatmap_evidence(heatmap)
    if evidence == "positive":
        faith_result = faithfulness(loaded, image, heatmap, target, faith, scaled(progress, slow_share, 1.0))
    else:  # nothing to rank pixels by: a deletion/insertion score would only measure raster order
        heatmap = np.zeros_like(heatmap)
        empty = np.zeros(0, np.float32)
        faith_result = Faithfulness(None, None, empty, empty)
        if progress:
            progress(1000, 1000)
    arrays = {"heatmap": heatmap, "deletion": faith_result.deletion_curve, "insertion": faith_result.insertion_curve,
              **{f"extra_{k}": v[0] for k, v in extras.items()}}
    cache.save_arrays("attribution", key, arrays, {"seconds": seconds, "evidence": evidence,
                                                    "deletion_auc": faith_result.deletion_auc,
                                                    "insertion_auc": faith_result.insertion_auc, "method": config.method,
                                                    "model": loaded.spec.name, "target": target})
    return Attribution(loaded.spec.name, config.method, params_out, prediction, seconds, heatmap, faith_result,
                       faith.steps, {k: v[0] for k, v in extras.items()}, evidence)


def _label(class_id: int) -> str:
    from ..models.labels import imagenet_labels

    return imagenet_labels()[class_id]
