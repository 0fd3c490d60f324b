"""cnnviz home: click an image, see the most similar ones and their search score."""

import streamlit as st

from cnnviz.data import DEFAULT_DATASET, list_datasets
from cnnviz.errors import CnnvizError
from cnnviz.models import DEFAULT_MODEL, MODELS
from cnnviz.scoring import DEFAULT_K
from cnnviz.ui import cached
from cnnviz.workflows import search_features

st.set_page_config(page_title="cnnviz", page_icon="🔎", layout="wide")
st.title("cnnviz — semantic image search")
st.caption("Click an image: a CNN's features find the most similar images of the dataset.")

trained = [n for n, s in MODELS.items() if s.builder != "keras"]  # offline ImageNet weights
c1, c2 = st.columns(2)
dataset_name = c1.selectbox("Dataset", list_datasets(), index=list_datasets().index(DEFAULT_DATASET), key="home_dataset")
model_name = c2.selectbox("Model", trained, index=trained.index(DEFAULT_MODEL), key="home_model")

try:
    ds = cached.dataset(dataset_name)
    loaded = cached.model(model_name)
    layer = loaded.spec.embedding_layer
    feats = cached.features(model_name, dataset_name, layer)
except CnnvizError as exc:
    st.error(str(exc))
    st.stop()

query = st.session_state.get("home_query")
if query not in ds.ids:
    query = None

if query:
    res = search_features(ds, feats, loaded, layer, query, "cosine", None, DEFAULT_K)
    st.subheader(f"Query: {res.query_id}")
    left, right = st.columns([1, 3])
    left.image(cached.thumbnail(res.query_path), caption=f"class: {res.query_label}")
    if res.score is not None:
        left.metric("Search score", f"{res.score:.1f} / 100")
        left.caption(f"Weighted share of the top {DEFAULT_K} results in the query's class; "
                     "result i (0 = best) weighs (k − i)/k. Cosine similarity of "
                     f"{model_name}'s `{layer}` features.")
    cols = right.columns(5)
    for hit, col in zip(res.hits, [c for _ in range(3) for c in cols]):
        mark = "✅" if hit.label == res.query_label else "❌"
        col.image(cached.thumbnail(hit.path), caption=f"#{hit.rank} {mark} {hit.label} · {hit.similarity:.3f}")
    if st.button("Clear query"):
        st.session_state.pop("home_query", None)
        st.rerun()
    st.divider()

st.subheader(f"{ds.name}: {len(ds.items)} images, {len(ds.classes)} classes — click one")
grid = st.columns(8)
for i, item in enumerate(ds.items):
    col = grid[i % 8]
    col.image(cached.thumbnail(str(item.path), 96))
    if col.button(item.label or "query", key=f"q_{item.id}", width="stretch"):
        st.session_state["home_query"] = item.id
        st.rerun()
