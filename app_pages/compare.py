"""Compare models: the same query side by side, and score heatmaps over models × layers × metrics."""

import streamlit as st

from cnnviz.errors import CnnvizError
from cnnviz.scoring import DEFAULT_K
from cnnviz.search import METRICS
from cnnviz.ui import cached, charts, state, widgets
from cnnviz.ui.gallery import image_gallery
from cnnviz.ui.sidebar import semantic_models
from cnnviz.workflows import search_features

st.title("Compare models side by side")
available = semantic_models()
default = [m for m in (st.session_state[state.MODEL], "mobilenet_v2_tv", "efficientnet_lite2") if m in available]
chosen = st.multiselect("Models (2–4)", available, default=list(dict.fromkeys(default))[:3], max_selections=4, key="compare.models")
metric = st.selectbox("Metric", METRICS, key="compare.metric")
p = st.slider("Minkowski p", 1.0, 8.0, 3.0, 0.5, key="compare.p") if metric == "minkowski" else None
if len(chosen) < 2:
    st.info("Choose at least two models.")
    st.stop()

ref, ds = widgets.selected_dataset()

query = st.session_state[state.QUERY]
if query not in ds:
    st.info("Pick a query image: the same image is searched with every model.")
    with st.expander("Dataset images", expanded=True):
        image_gallery(ds, ref, key="compare")
    st.stop()

st.subheader(f"Query {query}")
cols = st.columns([1] + [2] * len(chosen))
cols[0].image(cached.thumbnail(ds.items[ds.index_of(query)].path.as_posix()), caption=query)
cols[0].button("Change query", on_click=state.set_query, args=(None,))
for col, model_name in zip(cols[1:], chosen):
    with col:
        try:
            loaded = cached.model(model_name)
            layer = st.selectbox("Layer", list(loaded.spec.all_layers), index=len(loaded.spec.all_layers) - 1,
                                 key=f"compare.layer.{model_name}")
            feats = cached.features(model_name, ref, layer)
        except CnnvizError as exc:
            st.error(str(exc))
            continue
        res = search_features(ds, feats, loaded, layer, query, metric, p, DEFAULT_K,
                              index=cached.search_index(model_name, ref, layer, metric, p))
        score = "–" if res.score is None else f"{res.score:.1f}"
        st.markdown(f"**{model_name}** · score **{score}** / 100")
        widgets.results_grid(res, columns=3, thumb=110)

st.divider()
if not ds.labelled:
    st.caption("This dataset has no classes, so there are no dataset scores to compare.")
    st.stop()
st.subheader("Dataset mean search score: models × layers")
table = cached.comparison(ref, tuple(chosen), tuple(METRICS), p)
st.altair_chart(charts.score_heatmap(table, metric), width="stretch")
st.subheader("Every metric, embedding layer")
st.altair_chart(charts.metric_by_model(table), width="stretch")
sampled = table[table.n_queries < table.n_images]
queries = ("every image as a query" if sampled.empty else f"a seeded sample of {int(sampled.n_queries.max()):,} of "
           f"{int(sampled.n_images.max()):,} images as queries (mean score ± {sampled.mean_score_ci95.max():.1f} or "
           "better, 95% interval: column mean_score_ci95)")
st.caption(f"Scores use k = {DEFAULT_K}, {queries}; the query is excluded from its own results. "
           "Measured on this dataset with these models' cached features.")
st.download_button("Download the table (CSV)", table.to_csv(index=False).encode(), file_name=f"cnnviz-compare-{ds.name}.csv",
                   mime="text/csv")
with st.expander("Table"):
    st.dataframe(table, hide_index=True)
