"""Reusable page fragments: result grids, the query card, the selected model and dataset."""

from __future__ import annotations

import streamlit as st

from ..workflows import SearchResult
from . import cached, state


def results_grid(res: SearchResult, columns: int = 5, thumb: int = 160, flags: dict[str, str] | None = None) -> None:
    """Ranked results with class and similarity; a green check or a red cross says whether the class is the query's.

    ``flags`` (optional): a short note per result id (e.g. a suspected label error from the Data quality page).
    One ``st.html`` element for the whole grid (see :mod:`cnnviz.result_cards` for why).
    """
    from ..result_cards import Card, results_html
    from ..thumbnails import data_uris

    uris = data_uris([hit.path for hit in res.hits], thumb)  # memoised per image: a new query re-encodes nothing
    flags = flags or {}
    cards = [Card(uri, hit.rank, hit.id, hit.label, hit.similarity, flags.get(hit.id)) for hit, uri in zip(res.hits, uris)]
    st.html(results_html(cards, res.query_label, columns))


def query_card(res: SearchResult, k: int, model_name: str, layer: str) -> None:
    """The query image, its search score and what the score means."""
    if res.in_dataset:
        st.image(cached.thumbnail(res.query_path), caption=f"{res.query_id} · class {res.query_label}")
    else:
        upload = st.session_state.get(state.UPLOAD)
        if upload:
            st.image(upload[1], caption=f"{res.query_id} (uploaded, no class)")
    if res.score is not None:
        st.metric("Search score", f"{res.score:.1f} / 100")
        st.caption(f"precision@{k}: {res.precision_at_k:.2f}. The score is the weighted share of the top {k} "
                   f"results in the query's class; result i (0 = best) weighs (k − i)/k. "
                   f"{res.metric} on {model_name}'s `{layer}` features.")
    else:
        st.caption("No search score: the query has no class (uploaded or unlabelled).")


def selected_dataset():
    """The sidebar's dataset, scanned and cached; shows the error and stops the page if it fails.

    Returns (dataset_ref, dataset).
    """
    from ..errors import CnnvizError

    ref = st.session_state[state.DATASET]
    try:
        return ref, cached.dataset(ref)
    except CnnvizError as exc:
        st.error(str(exc))
        st.stop()


def selected_model_and_dataset():
    """The sidebar's model and dataset, built and cached; shows the error and stops the page if either fails.

    Returns (model_name, dataset_ref, loaded_model, dataset).
    """
    from ..errors import CnnvizError

    model_name, ref = st.session_state[state.MODEL], st.session_state[state.DATASET]
    try:
        return model_name, ref, cached.model(model_name), cached.dataset(ref)
    except CnnvizError as exc:
        st.error(str(exc))
        st.stop()


@st.fragment(run_every=1.0)
def job_progress(job, text: str) -> None:
    """A background job's progress, polled every second; the whole page reruns once it finished."""
    if job.error:
        st.error(f"{text} failed: {job.error}")
    elif job.finished:
        st.rerun()
    else:
        st.progress(job.fraction, text=f"{text} in the background: {job.status()} "
                                       "(shared by every user, kept in the cache; the page fills in when it is done)")


@st.fragment(run_every=1.0)
def rerun_when(ready) -> None:
    """Poll ``ready()`` every second; rerun the whole page once it is true (e.g. UMAP finished compiling)."""
    if ready():
        st.rerun()
