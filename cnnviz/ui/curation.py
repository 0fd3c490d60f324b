"""Streamlit caching around :func:`cnnviz.workflows.curate`, and the marks it puts on search results."""

from __future__ import annotations

import streamlit as st

from .. import workflows
from ..curate import curation_path, load_curation, probe_summary, result_flags
from ..data.registry import DATASETS
from . import cached

PROBE_MODELS = "quality.probe_models"  # session key of the Data quality page's extra probe models
STAGES = ("extracting features", "building the search index", "hashing images", "finding neighbours",
          "cross-validated probe", "cleanlab")


def _source(dataset_ref: str) -> dict:
    return {"dataset": dataset_ref} if dataset_ref in DATASETS else {"images": dataset_ref}


@st.cache_data(show_spinner=False, max_entries=32)
def result(model_name: str, dataset_ref: str, layer: str, probe_models: tuple[str, ...] = ()) -> dict:
    """The curation of one (model, dataset, layer, extra probe models): from the disk cache, or computed with a
    progress bar."""
    bar = st.progress(0.0, text="Curating: starting…")

    def progress(stage: str, done: int, total: int) -> None:
        step = STAGES.index(stage) + 1 if stage in STAGES else 0
        bar.progress(done / max(total, 1), text=f"Curating, step {step} of {len(STAGES)}: {stage} {done:,}/{total:,}")

    try:
        return workflows.curate(model_name, **_source(dataset_ref), layer=layer, progress=progress,
                                probe_models=probe_models)
    finally:
        bar.empty()


def probe_model_choices(model_name: str) -> list[str]:
    """Models the label-issue probe can also ask: the other ImageNet models with weights here (not adapted ones)."""
    from ..models.registry import MODELS
    from .sidebar import semantic_models

    return [m for m in semantic_models() if m != model_name and m in MODELS]


@st.cache_resource(show_spinner=False, max_entries=64)
def _key(model_name: str, dataset_ref: str, layer: str, probe_models: tuple[str, ...]) -> str:
    return workflows.curation_key(cached.dataset(dataset_ref), cached.model(model_name), layer,
                                  probe_models=probe_models)


@st.cache_data(show_spinner=False, max_entries=16)
def _load(key: str, mtime_ns: int) -> dict | None:
    return load_curation(key)


def cached_result(model_name: str, dataset_ref: str, layer: str) -> dict | None:
    """The curation if it was already computed (never computes one): one stat per call once the key is known.
    With the extra probe models last chosen on the Data quality page."""
    key = _key(model_name, dataset_ref, layer, tuple(st.session_state.get(PROBE_MODELS) or ()))
    try:
        mtime = curation_path(key).stat().st_mtime_ns
    except OSError:
        return None
    return _load(key, mtime)


def flags(model_name: str, dataset_ref: str, layer: str, res) -> dict[str, str] | None:
    """Marks for a search result's hits (suspected label error, duplicate of the query) when curation is cached."""
    curation = cached_result(model_name, dataset_ref, layer)
    if curation is None:
        return None
    return result_flags(curation, res.query_id if res.in_dataset else None, [h.id for h in res.hits]) or None


def probe_text(result: dict) -> str:
    """The probe's layers and accuracy for the page, e.g. "Label-issue probe: block6d_out (65%), …"."""
    line = probe_summary(result)
    return (line[0].upper() + line[1:]) if line else ""
