"""Session-state keys shared across pages (selections and ids only)."""

from __future__ import annotations

import streamlit as st

DATASET = "cnnviz.dataset"  # dataset ref: sample name or folder/zip path
MODEL = "cnnviz.model"
QUERY = "cnnviz.query"  # dataset image id, or None
UPLOAD = "cnnviz.query_upload"  # (name, bytes) of an uploaded query image, or None
CUSTOM_DATASETS = "cnnviz.custom_datasets"  # {label: ref} added by this session
LAST_RUN_MS = "cnnviz.last_run_ms"  # server time of the last complete script run


def init_defaults(dataset: str, model: str) -> None:
    st.session_state.setdefault(DATASET, dataset)
    st.session_state.setdefault(MODEL, model)
    st.session_state.setdefault(QUERY, None)
    st.session_state.setdefault(UPLOAD, None)
    st.session_state.setdefault(CUSTOM_DATASETS, {})


def set_query(item_id: str | None) -> None:
    st.session_state[QUERY] = item_id
    st.session_state[UPLOAD] = None


def set_query_from_map(chart_key: str, selection: str, valid_ids: list[str]) -> None:
    """on_select callback of a feature map: the clicked point becomes the query."""
    event = st.session_state.get(chart_key)
    picked = (event.selection.get(selection) or []) if event else []
    if picked and picked[0].get("id") in valid_ids:
        set_query(picked[0]["id"])


def record_run_time(seconds: float) -> None:
    """Keep and show how long this script run took on the server (read by benchmarks/ui_latency.py)."""
    st.session_state[LAST_RUN_MS] = 1000 * seconds
    st.sidebar.caption(f":material/timer: server time for this page (last full run): {1000 * seconds:.0f} ms")


def show_part_time(part: str, seconds: float) -> None:
    """Show how long a fragment's run (a part of the page rerun alone) took on the server."""
    st.caption(f":material/timer: server time for {part}: {1000 * seconds:.0f} ms")


# --- links that reproduce a view: ?dataset=…&model=…&layer=…&metric=…&query=… ------------------------------

URL_RESTORED = "cnnviz.url_restored"
URL_KEYS = ("dataset", "model", "layer", "metric", "query")
# Which page widget holds each page-specific URL value (pages are st.Page url paths; "" is Home).
PAGE_KEYS: dict[str, dict[str, str]] = {
    "search": {"layer": "search.layer", "metric": "search.metric"},
    "compare": {"metric": "compare.metric"},
}
QUERY_PAGES = ("", "search", "compare")


def _restore_dataset(value: str, samples: list[str]) -> str:
    """A URL's dataset as a session dataset ref: a sample name, or a folder inside the allowed data roots
    (added to this session's datasets as the sidebar's folder picker does). Raises CnnvizError otherwise."""
    from ..data.roots import resolve_in_roots
    from . import cached

    if value in samples:
        return value
    real = str(resolve_in_roots(value))
    ds = cached.dataset(real)
    st.session_state[CUSTOM_DATASETS][f"{ds.name} (folder)"] = real
    return real


def restore_from_url(samples: list[str]) -> None:
    """Once per session, before the sidebar: apply the link's dataset, model, layer, metric and query.

    Each value is checked (a sample or a folder inside the allowed roots, a model with weights, a layer of
    that model, a known metric, an image of that dataset); a bad one gets a clear st.error and the default.
    """
    if st.session_state.get(URL_RESTORED):
        return
    st.session_state[URL_RESTORED] = True
    params = {k: st.query_params.get(k) for k in URL_KEYS if st.query_params.get(k)}
    if not params:
        return
    from ..errors import CnnvizError
    from ..models import get_model_spec
    from ..search import METRICS
    from . import cached
    from .sidebar import semantic_models

    problems = []
    if "dataset" in params:
        try:
            st.session_state[DATASET] = _restore_dataset(params["dataset"], samples)
        except CnnvizError as exc:
            problems.append(f"dataset {params['dataset']!r}: {exc}")
            params.pop("query", None)  # an image id of a dataset we do not open
    if "model" in params:
        if params["model"] in semantic_models():
            st.session_state[MODEL] = params["model"]
        else:
            problems.append(f"model {params['model']!r}: not one of {', '.join(semantic_models())}")
    if "layer" in params:
        if params["layer"] in get_model_spec(st.session_state[MODEL]).all_layers:  # registry or adapted model
            st.session_state["search.layer"] = params["layer"]
        else:
            problems.append(f"layer {params['layer']!r}: not a layer of {st.session_state[MODEL]}")
    if "metric" in params:
        if params["metric"] in METRICS:
            st.session_state["search.metric"] = st.session_state["compare.metric"] = params["metric"]
        else:
            problems.append(f"metric {params['metric']!r}: not one of {', '.join(METRICS)}")
    if "query" in params:
        try:
            known = params["query"] in cached.dataset(st.session_state[DATASET])
        except CnnvizError:
            known = False
        if known:
            set_query(params["query"])
        else:
            problems.append(f"query {params['query']!r}: no such image in this dataset")
    if problems:
        st.error("This link's view could not be restored in full; the rest uses the defaults:\n\n"
                 + "\n".join(f"- {p}" for p in problems), icon=":material/link_off:")


def write_url(page_path: str) -> None:
    """Put this session's view into the URL (only the keys that changed), so the address reproduces it."""
    from ..data.roots import resolve_in_roots
    from ..errors import CnnvizError

    ref = str(st.session_state[DATASET])
    want: dict[str, str | None] = {"dataset": ref, "model": st.session_state[MODEL], "layer": None, "metric": None,
                                   "query": st.session_state[QUERY] if page_path in QUERY_PAGES else None}
    if "/" in ref or "\\" in ref:  # a folder: only one inside the allowed roots makes a link others can open
        try:
            resolve_in_roots(ref)
        except CnnvizError:
            want["dataset"] = None
            want["query"] = None
    for name, widget_key in PAGE_KEYS.get(page_path, {}).items():
        want[name] = st.session_state.get(widget_key)
    for name, value in want.items():
        if value is None:
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != str(value):
            st.query_params[name] = str(value)
