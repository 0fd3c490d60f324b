"""Streamlit caching and background jobs for the Attribution page.

Images are passed as raw bytes plus their sha256 (``image_key``): Streamlit
hashes the short key, not megabytes of bytes (the underscore argument is
skipped). Fast methods run in the script with a progress bar and are kept by
``st.cache_data``; LIME and SHAP run as background jobs shared by every
session, and land in the disk cache that :func:`explain` reads.
"""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from ..attribution import METHODS, Attribution, FaithfulnessConfig, explain, predictions
from ..data.images import encode_image, load_for_model
from ..models.inference import Prediction
from .cached import model
from .jobs import BackgroundJob, submit

Params = tuple[tuple[str, object], ...]  # hashable method settings


def image_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_slow(method: str) -> bool:
    return METHODS[method][0].slow


@st.cache_data(show_spinner=False, max_entries=64)
def prepared(_image: bytes, key: str, model_name: str, name: str = "image") -> np.ndarray:
    """The image as the model sees it (center crop, input size); raises ImageLoadError on bad files."""
    return load_for_model(_image, model(model_name).spec.input_size, name=name)


@st.cache_data(show_spinner=False, max_entries=64)
def top5(_image: bytes, key: str, model_name: str) -> list[Prediction]:
    return predictions(model(model_name), prepared(_image, key, model_name))


def _explain(image: bytes, key: str, model_name: str, method: str, target: int | None, params: Params,
             faith: FaithfulnessConfig, progress=None) -> Attribution:
    return explain(model(model_name), prepared(image, key, model_name), method, target, dict(params), faith, progress)


@st.cache_data(show_spinner=False, max_entries=256)
def fast_attribution(_image: bytes, key: str, model_name: str, method: str, target: int | None, params: Params,
                     steps: int, baseline: str) -> Attribution:
    bar = st.progress(0.0, text=f"{method} on {model_name}…")
    try:
        return _explain(_image, key, model_name, method, target, params, FaithfulnessConfig(steps, baseline),
                        lambda d, t: bar.progress(d / max(t, 1), text=f"{method} on {model_name}: heatmap, then deletion/insertion curves"))
    finally:
        bar.empty()


@st.cache_resource(show_spinner=False, max_entries=64)
def slow_attribution_job(_image: bytes, key: str, model_name: str, method: str, target: int | None, params: Params,
                         steps: int, baseline: str) -> BackgroundJob:
    """LIME/SHAP on the shared job pool (merged with an identical queued or running job); the result is
    ``job.result`` (and on disk)."""
    faith = FaithfulnessConfig(steps, baseline)
    model(model_name)  # build in this script run, not in the thread
    return submit(("attribution", key, model_name, method, target, params, steps, baseline), f"{method}-{model_name}",
                  lambda progress: _explain(_image, key, model_name, method, target, params, faith, progress))


def curves_frame(results: dict[str, Attribution]):
    """Deletion and insertion curves of several overlays, long format for altair."""
    import pandas as pd

    rows = []
    for name, a in results.items():
        f = a.faithfulness
        if not a.scored:
            continue
        steps = len(f.deletion_curve) - 1
        for kind, curve in (("deletion", f.deletion_curve), ("insertion", f.insertion_curve)):
            rows += [{"overlay": name, "curve": kind, "fraction of pixels": k / steps, "probability": float(p)}
                     for k, p in enumerate(curve)]
    return pd.DataFrame(rows)


def method_params(method: str, smooth_samples: int, lime_samples: int, shap_evals: int, cam_layer: str | None) -> Params:
    """The page's settings that apply to one method, as a hashable tuple."""
    table = {"smoothgrad": {"samples": int(smooth_samples)}, "lime": {"samples": int(lime_samples)},
             "shap": {"max_evals": int(shap_evals)}, "gradcam": {"layer": cam_layer}, "gradcam++": {"layer": cam_layer},
             "scorecam": {"layer": cam_layer}}
    return tuple(sorted(table.get(method, {}).items()))


def attribution(image: bytes, key: str, model_name: str, method: str, target: int | None, params: Params,
                steps: int, baseline: str) -> tuple[Attribution | None, BackgroundJob | None]:
    """(result, None) for fast methods; (result or None, job) for slow ones, None while the job runs.

    A failed job is dropped from the cache after it is reported, so the next run tries again.
    """
    if not is_slow(method):
        return fast_attribution(image, key, model_name, method, target, params, steps, baseline), None
    job = slow_attribution_job(image, key, model_name, method, target, params, steps, baseline)
    if job.finished and job.error:
        slow_attribution_job.clear(image, key, model_name, method, target, params, steps, baseline)
    return (job.result if job.finished and not job.error else None), job


def png(image: np.ndarray) -> bytes:
    return encode_image(image)


def top5_frame(image: bytes, key: str, model_name: str):
    import pandas as pd

    return pd.DataFrame([{"class": p.class_id, "label": p.label, "probability": round(p.probability, 4)}
                         for p in top5(image, key, model_name)])


def grid_download(results: dict[tuple[str, str], Attribution], pixels: dict[str, np.ndarray], alpha: float,
                  cmap: str, lime_view: str) -> bytes:
    """The finished overlays as one PNG: rows = models, columns = methods, captioned like the page."""
    from ..attribution.render import blend, grid_png

    rows: dict[str, list] = {}
    for (m, method), a in results.items():
        shown = a.extras["boundaries"] if method == "lime" and lime_view == "boundaries" else blend(pixels[m], a.heatmap, alpha, cmap)
        rows.setdefault(m, []).append((f"{m} · {method}\n{a.target.label[:24]} {a.target.probability:.2f} · {a.seconds:.1f} s\n"
                                       f"{a.faithfulness_text()}", shown))
    return grid_png(list(rows.values()))
