"""Adapt: train a search embedding for the sidebar's labelled dataset; held-out score before and after."""

from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

from cnnviz.adapt import (ADAPTED_LAYER, DEFAULT_METHOD, EVAL_K, FINETUNE, METHODS, POOLINGS, adapt, default_epochs,
                          default_name, describe_adapted, find_entry, held_out_side_by_side)
from cnnviz.models import MODELS
from cnnviz.ui import cached, jobs, sidebar, widgets

st.title("Adapt — tune search to your own data")
st.caption("Trains a projection of a model's frozen features on part of the labelled dataset (the sidebar's), then "
           f"measures search on the **held-out** images only, each searching among the other held-out images "
           f"(cosine, k = {EVAL_K}). The result is a new model (e.g. `efficientnet_lite0+stamps`) in the sidebar, "
           "Search, Compare and Benchmark, and in the CLI. Base features come from the cache; nothing is re-extracted "
           "(**finetune** also trains the model's last block: its input maps are extracted once, then cached).")

ref, ds = widgets.selected_dataset()
if not ds.labelled:
    st.info(f"{ds.name} has no classes: adapting needs a labelled dataset (one sub-folder per class).")
    st.stop()

bases = [m for m in sidebar.semantic_models() if m in MODELS]
c1, c2, c3, c4 = st.columns([2, 2, 2, 1])
model = c1.selectbox("Base model", bases, key="adapt.model")
spec = MODELS[model]
layer = c2.selectbox("Layer", ["all", *spec.all_layers], index=0, key="adapt.layer",
                     format_func=lambda n: "all layers, side by side" if n == "all" else
                     f"{n} (embedding)" if n == spec.embedding_layer else n,
                     help="all: the pooled features of the model's 8 layers, each standardised and weighted equally "
                          "(measured best on the sample sets, docs/adapt.md). The frozen baseline is always the embedding.")
method = c3.selectbox("Method", METHODS, index=METHODS.index(DEFAULT_METHOD), key="adapt.method",
                      help="lda: closed-form linear discriminant analysis. linear/mlp-LOSS: a linear or one-hidden-layer "
                           "projection trained with supervised-contrastive (supcon), proxy or batch-hard triplet loss. "
                           "finetune: a copy of the model's last block (EfficientNet-Lite: block7a + head conv) and an "
                           "MLP trained together with supcon on the block's cached input maps (slow on a CPU, "
                           "worth it on a GPU; docs/adapt.md).")
epochs = c4.number_input("Epochs", 1, 2000, default_epochs(method), disabled=method == "lda",
                         key="adapt.epochs" if method != FINETUNE else "adapt.epochs.finetune",
                         help="finetune: epochs of block + head together, after a short head-only start"
                         if method == FINETUNE else None)
c5, c6, c8, c7 = st.columns([2, 1, 1, 3])
holdout = c5.slider("Held out (share of each class)", 0.2, 0.8, 0.5, 0.05, key="adapt.holdout")
seed = c6.number_input("Seed", 0, 10_000, 0, key="adapt.seed")
pooling = c8.selectbox("Pooling", POOLINGS, key="adapt.pooling", help="how each layer's feature map is pooled to a vector")
name = c7.text_input("Name of the adapted model", default_name(model, ds.name), key=f"adapt.name.{model}.{ds.name}")


@dataclass
class TrainingLog:
    """What a running adaptation reports to the page (written by the job's thread)."""

    phase: str = "queued"
    losses: list = field(default_factory=list)


def start() -> None:
    log = TrainingLog()

    def on_epoch(epoch: int, total: int, loss: float) -> None:
        log.phase = "training"
        if loss == loss:  # LDA reports no loss (NaN)
            log.losses.append(loss)

    def work(progress):
        log.phase = "features"
        return adapt(model, ref, None, layer, method, int(epochs), float(holdout), int(seed), name.strip() or None,
                     progress=progress, on_epoch=lambda e, n, loss: (on_epoch(e, n, loss), progress(e, n)),
                     pooling=pooling)

    key = ("adapt", model, ref, cached.dataset_digest(ref), layer, pooling, method, int(epochs), float(holdout),
           int(seed), name)
    job = jobs.submit(key, f"adapt-{name}", work)
    if not hasattr(job, "log"):
        job.log = log
    st.session_state["adapt.job"] = job
    st.session_state.pop("adapt.result", None)


blocked = method == FINETUNE and layer != "all"
if blocked:
    st.warning("finetune reads all the model's layers (the frozen ones and its trained last block): choose "
               "**all layers** as the layer.")
st.button("Train", type="primary", on_click=start, icon=":material/model_training:", disabled=blocked)
if find_entry(name.strip() or default_name(model, ds.name)):
    st.caption(f"A saved adapted model named `{name}` exists: training replaces it.")


@st.fragment(run_every=1.0)
def live() -> None:
    job = st.session_state.get("adapt.job")
    if job is None:
        return
    log = getattr(job, "log", TrainingLog())
    if job.error:
        st.error(f"Adapting failed: {job.error}")
        st.session_state.pop("adapt.job")
        return
    if not job.finished:
        what = {"queued": job.status(), "features": f"reading base features {job.done}/{job.total} images",
                "training": f"training: epoch {job.done}/{job.total}"}[log.phase]
        st.progress(job.fraction if log.phase != "queued" else 0.0, text=what)
    if log.losses:
        st.line_chart(pd.DataFrame({"training loss": log.losses}).rename_axis("epoch"), height=220,
                      x_label="epoch", y_label="training loss")
    if job.finished:
        st.session_state["adapt.result"] = job.result
        st.session_state.pop("adapt.job")
        if job.result.get("replaced"):
            _replaced_caches(job.result["name"])
        st.rerun()


def _replaced_caches(name: str) -> None:
    """A re-trained name must not be served from caches of its previous version: drop the dashboard's
    feature, index and score caches (memory maps and small reports; cheap to rebuild)."""
    for fn in ("_features", "_search_index", "_retrieval_report", "_projection", "_comparison"):
        getattr(getattr(cached, fn, None), "clear", lambda: None)()


live()

result = st.session_state.get("adapt.result")
if result is None and (saved := find_entry(name.strip() or default_name(model, ds.name))):
    if saved.get("dataset_digest") == cached.dataset_digest(ref):
        result = saved
if result is None:
    st.info("Choose the settings and press **Train**.")
else:
    s = result["split"]
    st.subheader(f"{result['name']}: held-out search before and after")
    frozen_layer = result.get("before_layer", result["layer"])
    table = pd.DataFrame([{"embedding": f"before: {result['model']} · {frozen_layer} (frozen)", **result["before"]},
                          {"embedding": f"after: {result['name']} ({result['method']} on {result['layer']}, "
                                        f"{result.get('pooling', 'avg')}-pooled)", **result["after"]}])
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "mean_score": st.column_config.NumberColumn("mean search score", format="%.1f"),
        "precision_at_k": st.column_config.NumberColumn(f"precision@{EVAL_K}", format="%.3f"),
        "knn_accuracy": st.column_config.NumberColumn("5-NN accuracy", format="%.3f")})
    unseen = s["test_unseen_labels"]
    st.caption(f"Measured on **{s['test']} held-out images** (searching among themselves) after training on {s['train']} "
               f"images (split seed {s['seed']}, {s['holdout']:.0%} of each class held out); "
               + (f"**{unseen} held-out images have a label absent from training**, which cannot be learned; "
                  if unseen else "every held-out label was seen in training; ")
               + f"{result['epochs']} epochs, {result['seconds']:.1f} s training on this server.")
    gain = result["after"]["mean_score"] - result["before"]["mean_score"]
    st.metric("Held-out mean search score", f"{result['after']['mean_score']:.1f}", f"{gain:+.1f} points")
    if result.get("history"):
        st.line_chart(pd.DataFrame({"training loss": result["history"]}).rename_axis("epoch"), height=180,
                      x_label="epoch", y_label="training loss")
    if "test_ids" in (saved := find_entry(result["name"]) or {}) and saved["key"] == result["key"]:
        st.subheader("The same held-out queries, before and after")
        test_ids = saved["test_ids"]
        query = st.selectbox("Held-out query", test_ids, key="adapt.query")
        side = held_out_side_by_side(ds, cached.features(result["model"], ref, frozen_layer),
                                     cached.features(result["name"], ref, ADAPTED_LAYER), test_ids, query, EVAL_K)
        q, left, right = st.columns([1, 2, 2])
        q.image(cached.thumbnail(side["query"]["path"]), caption=f"{query} · class {side['query']['label']}")
        for col, when in ((left, "before"), (right, "after")):
            col.markdown(f"**{when}** · score **{side[when]['score']:.1f}** / 100")
            grid = col.columns(4)
            for n, hit in enumerate(side[when]["hits"][:8]):
                mark = ":material/check:" if hit["label"] == side["query"]["label"] else ":material/close:"
                grid[n % 4].image(cached.thumbnail(hit["path"], 96), caption=f"#{n + 1} {hit['label']}")
                grid[n % 4].caption(mark)
        st.caption(f"Top 8 of {EVAL_K} among the held-out images; the score counts all {EVAL_K}.")

saved_rows = describe_adapted()
if saved_rows:
    with st.expander(f"Saved adapted models ({len(saved_rows)}): pick one as the sidebar's model"):
        st.dataframe(pd.DataFrame(saved_rows), hide_index=True, width="stretch")
