"""Reusable page fragments: image grids, result grids, the dataset/model sidebar."""

from __future__ import annotations

import streamlit as st

from ..data import ImageDataset
from ..workflows import SearchResult
from . import cached, state


def clickable_grid(ds: ImageDataset, key: str, columns: int = 8, thumb: int = 96) -> None:
    """Every dataset image with a button under it; a click makes it the query."""
    grid = st.columns(columns)
    for i, item in enumerate(ds.items):
        col = grid[i % columns]
        col.image(cached.thumbnail(str(item.path), thumb))
        col.button(item.label or "query", key=f"{key}_{item.id}", width="stretch", help=item.id,
                   on_click=state.set_query, args=(item.id,))


def results_grid(res: SearchResult, columns: int = 5, thumb: int = 160) -> None:
    """Ranked results with class, similarity and ✅/❌ against the query's class."""
    cols = st.columns(columns)
    for n, hit in enumerate(res.hits):
        mark = "" if res.query_label is None else ("✅ " if hit.label == res.query_label else "❌ ")
        cols[n % columns].image(cached.thumbnail(hit.path, thumb),
                                caption=f"#{hit.rank} {mark}{hit.label or ''} · sim {hit.similarity:.3f}")


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


def picker_table(ds: ImageDataset, dataset_ref: str, key: str, height: int = 320) -> None:
    """A compact, selectable table of the dataset (one element, so reruns stay fast)."""
    import pandas as pd

    df = pd.DataFrame({"image": cached.thumbnail_uris(dataset_ref, tuple(range(len(ds.items)))), "id": ds.ids, "class": [l or "-" for l in ds.labels]})
    st.dataframe(
        df, key=key, height=height, hide_index=True, width="stretch", on_select=lambda: _table_pick(key, ds.ids),
        selection_mode="single-row", row_height=56,
        column_config={"image": st.column_config.ImageColumn("image", width="small")},
    )


def _table_pick(key: str, ids: list[str]) -> None:
    event = st.session_state.get(key)
    rows = event.selection.rows if event else []
    if rows:
        state.set_query(ids[rows[0]])


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
