"""Model Explorer: what each layer's channels respond to."""

import pandas as pd
import streamlit as st

from cnnviz.featureviz import ActMaxConfig, cached_visual, evenly_spaced_channels, layer_channels, top_activating, visualize_classes
from cnnviz.models.labels import imagenet_labels
from cnnviz.ui import cached, charts, widgets

st.title("Model Explorer — what the channels respond to")
st.caption("Left: an image optimised to excite the channel (activation maximisation, tf-keras-vis, with jitter and "
           "smoothness regularisers; shown contrast-stretched). Right: the dataset images that excite it most, with their mean activation.")
model_name, ref, loaded, ds = widgets.selected_model_and_dataset()

c1, c2 = st.columns([3, 1])
layer = c1.selectbox("Layer", list(loaded.spec.layers), index=4, key="explorer.layer")
steps = c2.select_slider("Optimisation steps", [8, 16, 32, 64, 128], value=64, key="explorer.steps")
channels = tuple(evenly_spaced_channels(layer_channels(loaded, layer)))
job = cached.featureviz_job(model_name, layer, channels, steps)
config = ActMaxConfig(steps=steps)
pooled = cached.features(model_name, ref, layer)


@st.fragment(run_every=2)
def job_progress() -> None:
    if job.error:
        st.error(f"Feature visualisation failed: {job.error}")
    elif not job.finished:
        st.progress(job.fraction, text=f"Optimising channel images in the background: {job.status()} "
                    "(shared by all users, cached on disk; the page fills in as they finish)")
    elif st.session_state.get("explorer.shown_done") != (model_name, layer, steps):
        st.session_state["explorer.shown_done"] = (model_name, layer, steps)
        st.rerun()


job_progress()
st.caption(f"{len(channels)} of {layer_channels(loaded, layer)} channels, evenly spaced.")

inspect = st.selectbox("Inspect a channel", channels, key="explorer.channel")
with st.container(border=True):
    left, right = st.columns([1, 3])
    visual = cached_visual(loaded, layer, inspect, config)
    if visual:
        left.image(cached.stretched(visual.image_path), width="stretch", caption=f"channel {inspect}: activation {visual.final_activation:.2f} "
                   f"(mean gray image: {visual.baseline_activation:.2f}) · {visual.seconds:.1f} s")
    else:
        left.info("Its image is still being optimised.")
    idx, acts = top_activating(pooled, inspect, 9)
    overlays = cached.channel_overlays(model_name, ref, layer, inspect, tuple(int(i) for i in idx))
    grid = right.columns(5)
    for n, (i, a, img) in enumerate(zip(idx, acts, overlays)):
        grid[n % 5].image(img, caption=f"{ds.items[i].label or ''} · {a:.2f}")
    top20, _ = top_activating(pooled, inspect, 20)
    mix = pd.Series([ds.items[i].label or "-" for i in top20]).value_counts()
    right.altair_chart(charts.class_mix(mix), width="stretch")

st.subheader("All channels")
for ch in channels:
    cols = st.columns([1.3, 1, 1, 1, 1, 1])
    visual = cached_visual(loaded, layer, ch, config)
    if visual:
        cols[0].image(cached.stretched(visual.image_path), width=128, caption=f"ch {ch} · {visual.final_activation:.1f}")
    else:
        cols[0].caption(f"ch {ch}: optimising…")
    idx, acts = top_activating(pooled, ch, 5)
    for col, i, a in zip(cols[1:], idx, acts):
        col.image(cached.thumbnail(str(ds.items[i].path), 96), caption=f"{ds.items[i].label or ''} · {a:.2f}")

if loaded.spec.has_classifier:
    st.subheader("Class visualisation (final layer)")
    labels = imagenet_labels()
    chosen = st.multiselect("ImageNet classes", range(1000), default=[967, 281], format_func=lambda i: f"{i} {labels[i]}",
                            max_selections=6, key="explorer.classes")
    if chosen and st.button("Visualise these classes"):
        bar = st.progress(0.0, text="Optimising class images…")
        st.session_state["explorer.class_visuals"] = [
            v.to_dict() for v in visualize_classes(loaded, chosen, config)]
        bar.empty()
    shown = st.session_state.get("explorer.class_visuals", [])
    cols = st.columns(max(len(shown), 1))
    for col, v in zip(cols, shown):
        col.image(cached.stretched(v["image_path"]), width=160, caption=f"{labels[v['channel']]} · logit {v['final_activation']:.1f}")
