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
    st.sidebar.caption(f":material/timer: server time for this page: {1000 * seconds:.0f} ms")
