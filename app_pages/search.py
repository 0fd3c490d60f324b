"""Search (advanced): layer, metric, pooling and top-k; scores per class; a UMAP map of the features."""

import streamlit as st

from cnnviz.data.images import UPLOAD_TYPES
from cnnviz.errors import CnnvizError
from cnnviz.features import POOLINGS
from cnnviz.projection import FIT_MAX, umap_metric, umap_ready
from cnnviz.scoring import DEFAULT_K, SCORE_K, figure_text, figures_note
from cnnviz.search import METRICS
from cnnviz.ui import cached, charts, curation, region, state, widgets
from cnnviz.ui.gallery import image_gallery
from cnnviz.workflows import search_features

st.title("Search — every layer, every metric")
model_name, ref, loaded, ds = widgets.selected_model_and_dataset()
cached.umap_warm_up()

spec = loaded.spec
c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
pooling = c3.selectbox("Pooling", POOLINGS, key="search.pooling", help="avg/max: one value per channel; grid2: a 2×2 grid of averages (4× longer vectors)")
layers = cached.layer_table(model_name, pooling)
layer = c1.selectbox("Layer", list(spec.all_layers), index=len(spec.all_layers) - 1, key="search.layer",
                     format_func=lambda n: f"{n} (embedding)" if n == spec.embedding_layer else n)
row = layers[layers.layer == layer].iloc[0]
c1.caption(f"output {row['shape']} → pooled vector of {row['pooled']}")
metric = c2.selectbox("Metric", METRICS, key="search.metric")
p = None
if metric == "minkowski":
    p = c2.slider("Minkowski p", 1.0, 8.0, 3.0, 0.5, key="search.p")
    c2.caption("p = 2 ranks exactly like euclidean, p = 1 like manhattan.")
top_k = c4.number_input("Top k", 1, 50, DEFAULT_K, key="search.top_k",
                        help=f"How many results to show. The search score always uses the top {SCORE_K}, as everywhere.")

try:
    feats = cached.features(model_name, ref, layer, pooling)
except CnnvizError as exc:
    st.error(str(exc))
    st.stop()

# Each element costs the browser tens of ms on a 2-core machine: no hint is said twice. A one-server A/B without the
# picker's caption, the "pick a query" box and the divider: 0.16-0.22 s faster at the median; a later two-server
# comparison was within noise (docs/scale.md).
with st.expander("Choose the query: click an image here or on the Feature map, or upload one",
                 expanded=st.session_state[state.QUERY] is None and not st.session_state[state.UPLOAD]):
    # Lazy tabs: the uploader (and its code in the browser) only when asked for.
    pick_tab, upload_tab = st.tabs(["Dataset images", "Upload an image"], key="search.query_source", on_change="rerun")
    if pick_tab.open:
        with pick_tab:
            image_gallery(ds, ref, key="search.picker")
    if upload_tab.open:
        with upload_tab:
            upload = st.file_uploader("Upload a query image", type=list(UPLOAD_TYPES), key="search.upload")
            if upload is not None and (st.session_state[state.UPLOAD] or ("", b""))[0] != upload.name:
                st.session_state[state.UPLOAD] = (upload.name, upload.getvalue())
                st.session_state[state.QUERY] = None

query, uploaded = st.session_state[state.QUERY], st.session_state[state.UPLOAD]
index = cached.search_index(model_name, ref, layer, metric, p, pooling)
res = None
crop = None  # a region of the query (drawn box), or the whole image
if uploaded or query in ds:
    crop = region.region_box(uploaded[1] if uploaded else ds.items[ds.index_of(query)].path, "search", spec.input_size)
try:
    if uploaded:
        res = region.search_with_region(lambda c: search_features(
            ds, feats, loaded, layer, None, metric, p, int(top_k), pooling, query_image=uploaded[1],
            query_name=uploaded[0], index=index, crop=c), crop)
    elif query in ds:
        res = region.search_with_region(lambda c: search_features(
            ds, feats, loaded, layer, query, metric, p, int(top_k), pooling, index=index, crop=c), crop)
except CnnvizError as exc:
    st.error(str(exc))
    st.session_state[state.UPLOAD] = None

if res is not None:
    st.subheader(f"Results for {res.query_id}" + (" (region {},{},{},{})".format(*res.crop) if res.crop else ""))
    st.caption(f"Search: {res.backend}.")
    left, right = st.columns([1, 3])
    with left:
        widgets.query_card(res, res.score_k, model_name, layer)
    with right:
        widgets.results_grid(res, flags=curation.flags(model_name, ref, layer, res))  # only if Data quality ran

# Lazy tabs: only the open one runs and is drawn. The map (5,000 points with thumbnails) is the page's heaviest
# part in the browser, so it is drawn when asked for; the tab is in the URL (?view=Feature+map) for links.
figures_tab, map_tab = st.tabs(["Dataset figures", "Feature map"], key="view", bind="query-params")
if figures_tab.open:
    with figures_tab:
        if ds.labelled:
            report, report_job = cached.retrieval_report(model_name, ref, layer, metric, p, pooling)
            st.subheader("How well does this setting search the whole dataset?")
            if report is None:
                widgets.job_progress(report_job, "Scoring every image of the dataset as a query")
            else:
                m1, m2, m3 = st.columns(3)
                m1.metric("Mean search score", figure_text(report, "mean_score", 1), help="Mean over the images used as the query")
                m2.metric(f"Precision@{report['score_k']}", figure_text(report, "precision_at_k", 3))
                m3.metric("Leave-one-out 5-NN accuracy", figure_text(report, "knn_accuracy", 3))
                st.caption(f"Dataset figures: {figures_note(report)}.")
                st.html(charts.per_class_html(report["per_class"], res.query_label if res else None))
        else:
            st.caption("This dataset has no classes, so there is no score — search and the map still work.")

if map_tab.open:
    with map_tab:
        method = st.radio("Projection", ["umap", "pca"], horizontal=True, key="search.projection",
                          format_func=str.upper, help=f"UMAP with the {umap_metric(metric)} metric, or the top-2 principal components")
        view = cached.map_view(model_name, ref, layer, pooling, method, umap_metric(metric))
        if view.compiling:
            st.info("UMAP is compiling its numba code (first use in this server process: about a minute on 2 CPU cores); showing PCA meanwhile.")
            widgets.rerun_when(umap_ready)
        if view.job is not None:
            widgets.job_progress(view.job, f"Fitting the {view.asked.upper()} map" + (" (PCA meanwhile)" if view.points is not None else ""))
        if view.points is None:
            st.stop()
        method = view.method
        roles = {h.id: "result" for h in res.hits} if res else {}
        if res and res.in_dataset:
            roles[res.query_id] = "query"
        map_spec, n_drawn = cached.feature_map_spec(model_name, ref, layer, pooling, view, roles,
                                                    f"{method.upper()} of {model_name} · {layer} ({pooling})")
        if n_drawn < len(ds.ids):
            st.caption(f"{len(ds.ids):,} images: the projection was fitted on a sample of {FIT_MAX:,} and applied to the rest; "
                       f"the map draws {n_drawn:,} of them (a random sample plus the query and its results).")
        st.vega_lite_chart(map_spec, width="stretch", key="search.map",
                           on_select=lambda: state.set_query_from_map("search.map", charts.MAP_SELECTION, ds.ids))
        st.caption("Hover a point to see the image; click it to make it the query. Big outlined point: the query; outlined: its results.")
