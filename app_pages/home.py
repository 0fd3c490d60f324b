"""Home (basic mode): click an image, see the most similar images and the search score."""

import time

import streamlit as st

from cnnviz.errors import CnnvizError
from cnnviz.scoring import DEFAULT_K
from cnnviz.ui import cached, curation, region, state, widgets
from cnnviz.ui.gallery import image_gallery
from cnnviz.workflows import search_features

st.title("cnnviz — semantic image search")
st.caption("Click any image: the model's embedding finds the most similar images of the dataset. "
           "Pick the dataset and model in the sidebar; layers, metrics and maps are on **Search (advanced)**, "
           "model-vs-model on **Compare models**.")

model_name, ref, loaded, ds = widgets.selected_model_and_dataset()
layer = loaded.spec.embedding_layer
try:
    feats = cached.features(model_name, ref, layer)
except CnnvizError as exc:  # e.g. a broken image inside a folder dataset
    st.error(str(exc))
    st.stop()


@st.fragment
def results_and_gallery() -> None:
    """A click on the gallery reruns this part only: the title and the sidebar are not sent again, so a click
    costs the server and the browser less (8 sessions on 10,000 images: docs/scale.md)."""
    started = time.perf_counter()
    state.write_url("")  # a fragment run skips app.py, which writes the address; first, as there, so it comes first
    query = st.session_state[state.QUERY]
    results = st.container()  # always there, so the gallery below keeps its place (and its frame) when a query appears
    if query in ds:
        with results:
            heading = st.empty()
            left, right = st.columns([1, 3])
        with left:  # the region box comes first: the search below uses it
            crop = region.region_box(ds.items[ds.index_of(query)].path, "home", loaded.spec.input_size)
        res = region.search_with_region(lambda c: search_features(
            ds, feats, loaded, layer, query, "cosine", None, DEFAULT_K,
            index=cached.search_index(model_name, ref, layer, "cosine", None), crop=c), crop)
        with results:
            heading.subheader(f"Most similar to {res.query_id}" + (" (region {},{},{},{})".format(*res.crop) if res.crop else ""))
            with left:
                widgets.query_card(res, DEFAULT_K, model_name, layer)
                st.button("Clear query", on_click=state.set_query, args=(None,))
            with right:
                widgets.results_grid(res, flags=curation.flags(model_name, ref, layer, res))  # only if Data quality ran
            st.divider()

    st.subheader(f"{ds.name}: {len(ds.items)} images, {len(ds.classes)} classes — click one")
    image_gallery(ds, ref, key="home")
    state.show_part_time("the results and gallery", time.perf_counter() - started)


results_and_gallery()
