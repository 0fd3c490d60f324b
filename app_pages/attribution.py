"""Attribution: where each method says the evidence for a class is, side by side across models."""

import streamlit as st

from cnnviz.attribution import METHODS, RISE_STEPS
from cnnviz.attribution.render import COLORMAPS, blend
from cnnviz.data.images import UPLOAD_TYPES
from cnnviz.errors import CnnvizError
from cnnviz.models import MODELS
from cnnviz.models.labels import imagenet_labels
from cnnviz.ui import attributions as attr
from cnnviz.ui import charts, sidebar, state, widgets

st.title("Attribution — where is the evidence for a class?")
st.caption("Each overlay shows where one method finds the evidence for the target class. Faithfulness: deleting the "
           "most important pixels first should make the probability fall fast (**lower deletion AUC**), inserting them "
           "into a blurred image should make it rise fast (**higher insertion AUC**) — RISE protocol, Petsiuk et al. 2018.")
model_name, ref, loaded, ds = widgets.selected_model_and_dataset()
labels = imagenet_labels()

source = st.radio("Image", ["Dataset image", "Upload"], horizontal=True, key="attr.source")
if source == "Upload":
    upload = st.file_uploader("JPEG, PNG, WebP, BMP, TIFF or GIF (first frame)", type=list(UPLOAD_TYPES),
                              key="attr.upload")
    if upload is None:
        st.info("Upload an image to explain, or pick a dataset image.")
        st.stop()
    image, name = upload.getvalue(), upload.name
else:
    query = st.session_state[state.QUERY]
    item_id = st.selectbox("Dataset image", ds.ids, index=ds.index_of(query) if query in ds else 0, key="attr.item")
    image, name = ds.items[ds.index_of(item_id)].path.read_bytes(), item_id
key = attr.image_key(image)

classifiers = [m for m in sidebar.semantic_models() if m in MODELS and MODELS[m].has_classifier]  # adapted: no classes
c1, c2 = st.columns([1, 2])
models = c1.multiselect("Models", classifiers, default=[model_name] if model_name in classifiers else classifiers[:1],
                        key="attr.models")
methods = c2.multiselect("Methods", list(METHODS), default=["saliency", "gradcam", "gradcam++", "lime", "shap"],
                         key="attr.methods", help="LIME and SHAP run in the background; the others are shown as soon as they finish.")
with st.expander("Settings"):
    s1, s2, s3, s4 = st.columns(4)
    target = s1.selectbox("Target class", [None, *range(1000)], key="attr.target",
                          format_func=lambda c: "top-1 of each model" if c is None else f"{c} {labels[c]}")
    alpha = s2.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="attr.alpha")
    cmap = s3.selectbox("Colormap", COLORMAPS, key="attr.cmap")
    steps = s4.select_slider("AUC curve steps", [16, 32, 64, RISE_STEPS], value=32, key="attr.steps",
                             help=f"{RISE_STEPS} = the RISE protocol (224 px per step at 224 px); fewer steps sample the same "
                                  "curves more coarsely and cost fewer forward passes (README: measured difference).")
    s1, s2, s3, s4 = st.columns(4)
    baseline = s1.radio("Deletion replaces pixels with", ["zeros", "blur"], key="attr.baseline", horizontal=True)
    smooth_samples = s2.number_input("SmoothGrad samples", 2, 100, 20, key="attr.smooth_samples")
    lime_samples = s3.number_input("LIME samples", 50, 5000, 300, step=50, key="attr.lime_samples")
    shap_evals = s4.number_input("SHAP max evals", 50, 5000, 300, step=50, key="attr.shap_evals")
    lime_view = s1.radio("LIME view", ["boundaries", "heatmap"], key="attr.lime_view", horizontal=True)
    cam_layers = {m: s2.selectbox(f"CAM layer of {m}", [None, *MODELS[m].layers[1:]], key=f"attr.layer.{m}",
                                  format_func=lambda v: "last conv layer" if v is None else v) for m in models}

if not models or not methods:
    st.info("Choose at least one model and one method.")
    st.stop()

try:
    pixels = {m: attr.prepared(image, key, m, name) for m in models}
except CnnvizError as exc:
    st.error(str(exc))
    st.stop()

cols = st.columns(len(models))
for col, m in zip(cols, models):
    with col:
        st.subheader(m)
        left, right = st.columns([1, 2])
        left.image(attr.png(pixels[m]), caption=f"{name} as {m} sees it")
        right.dataframe(attr.top5_frame(image, key, m), hide_index=True, width="stretch")

pending = []
finished = {}
for m in models:
    st.markdown(f"#### {m}: overlays and faithfulness")
    row, row_results = st.columns(len(methods)), {}
    for col, method in zip(row, methods):
        params = attr.method_params(method, smooth_samples, lime_samples, shap_evals, cam_layers.get(m))
        with col:
            result, job = attr.attribution(image, key, m, method, target, params, steps, baseline)
            if result is None:
                st.caption(f"**{method}**: running in the background…")
                if job.error:
                    st.error(f"{method} failed: {job.error}")
                else:
                    pending.append((f"{m} · {method}", job))
                continue
            finished[(m, method)] = row_results[method] = result
            shown = result.extras["boundaries"] if method == "lime" and lime_view == "boundaries" else blend(pixels[m], result.heatmap, alpha, cmap)
            st.image(attr.png(shown), width="stretch",
                     caption=f"{method} · {result.target.label} ({result.target.probability:.2f}) · {result.seconds:.1f} s")
            st.caption(result.faithfulness_text(markdown=True))
    if row_results:
        curves = attr.curves_frame(row_results)
        for col, curve in zip(st.columns(2), ("deletion", "insertion")):
            col.altair_chart(charts.faithfulness_curves(curves, curve), width="stretch", height=240)


@st.fragment(run_every=1.5)
def background_progress() -> None:
    for label, job in pending:
        st.progress(job.fraction, text=f"{label}: {job.status()} (shared by all users, cached on disk)")
    if all(job.finished for _, job in pending):
        st.rerun()


if pending:
    background_progress()
if finished:
    st.download_button("Download the grid (PNG)", attr.grid_download(finished, pixels, alpha, cmap, lime_view),
                       file_name=f"cnnviz-attribution-{key[:8]}.png", mime="image/png")
