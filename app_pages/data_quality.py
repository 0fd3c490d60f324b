"""Data quality: suspected label errors, near-duplicates, outliers and leaks, seen through the model's features."""

import pandas as pd
import streamlit as st

from cnnviz.errors import CnnvizError
from cnnviz.ui import cached, curation, state, widgets

PER_PAGE = 24
SEARCH_PAGE = "app_pages/search.py"

st.title("Data quality — the dataset through the model's eyes")
st.caption("Suspected label errors come from cleanlab on out-of-fold probabilities of a linear probe (5-fold "
           "cross-validated shrinkage LDA) on the model's layers with the best out-of-fold accuracy on the given "
           "labels; the list names them. Near-duplicates come from identical files, perceptual hashes and cleanlab's "
           "near-duplicate check on the chosen layer's features; outliers from cleanlab's nearest-neighbour outlier "
           "score. Click **Search** under any image to open it as the search query.")

model_name, ref, loaded, ds = widgets.selected_model_and_dataset()
spec = loaded.spec
c_layer, c_probe = st.columns([1, 2])
layer = c_layer.selectbox("Layer", list(spec.all_layers), index=len(spec.all_layers) - 1, key="quality.layer",
                          format_func=lambda n: f"{n} (embedding)" if n == spec.embedding_layer else n)
others = curation.probe_model_choices(model_name)
if any(m not in others for m in st.session_state.get(curation.PROBE_MODELS) or ()):  # the model changed since
    st.session_state[curation.PROBE_MODELS] = [m for m in st.session_state[curation.PROBE_MODELS] if m in others]
probe_models = c_probe.multiselect(
    "Also ask these models about labels", others, key=curation.PROBE_MODELS,
    help="Their label-issue probes are averaged with this model's: another family ranks wrong labels better "
         "(emoji3d with 10% flipped labels, efficientnet_lite0: precision 0.58 alone, 0.61 with mobilenet_v2_tv and "
         "efficientnet_lite2; benchmarks/curate.py, seeds 0-7, docs/curate.md). Each costs one feature pass over the images it has not cached.")
try:
    result = curation.result(model_name, ref, layer, tuple(probe_models))
except CnnvizError as exc:
    st.error(str(exc))
    st.stop()

paths = {item.id: str(item.path) for item in ds.items}
for note in result["notes"]:
    st.info(note)


def open_as_query(item_id: str) -> None:
    state.set_query(item_id)
    st.switch_page(SEARCH_PAGE)


def search_button(col, item_id: str, key: str) -> None:
    if col.button("Search", key=key, help=f"Open {item_id} as the search query", icon=":material/search:"):
        open_as_query(item_id)


def page_of(rows: list, key: str) -> list:
    if len(rows) <= PER_PAGE:
        return rows
    pages = (len(rows) + PER_PAGE - 1) // PER_PAGE
    page = st.number_input(f"Page (of {pages}, {PER_PAGE} per page, most likely first)", 1, pages, 1, key=key)
    return rows[(page - 1) * PER_PAGE : page * PER_PAGE]


def download(rows: list, name: str, key: str) -> None:
    st.download_button(f"Download all {len(rows)} as CSV", pd.DataFrame(rows).to_csv(index=False).encode(),
                       file_name=f"{ds.name}_{model_name}_{layer}_{name}.csv", mime="text/csv", key=key,
                       icon=":material/download:", disabled=not rows)


def image_grid(rows: list, caption, key: str, columns: int = 6) -> None:
    cols = st.columns(columns)
    for n, row in enumerate(rows):
        col = cols[n % columns]
        col.image(cached.thumbnail(paths[row["id"]], 140))
        col.caption(caption(row))
        search_button(col, row["id"], f"{key}.{row['id']}")


def pair_rows(rows: list, key: str, splits: bool = False) -> None:
    for n, row in enumerate(rows):
        a, b, info = st.columns([1, 1, 2])
        for col, side in ((a, "a"), (b, "b")):
            col.image(cached.thumbnail(paths[row[side]], 140))
            col.caption(row[side] + (f" ({row[side + '_split']})" if splits else ""))
            search_button(col, row[side], f"{key}.{n}.{side}")
        info.markdown(f"**{row['kind']}** duplicate · feature distance {row['distance']:.4f}")


what_if = result["what_if"]
if what_if:
    m1, m2, m3 = st.columns(3)
    m1.metric("Mean search score", f"{what_if['original']:.1f}",
              help=f"Every image as the query, top {what_if['k']} by {what_if['metric']} on {layer}")
    if what_if["without_flagged"] is not None:
        m2.metric(f"Without the {what_if['excluded']['total']} flagged images", f"{what_if['without_flagged']:.1f}",
                  delta=f"{what_if['without_flagged'] - what_if['original']:+.1f}")
    m3.metric("Images", f"{result['n_images']:,}")
    ex = what_if["excluded"]
    st.caption(f"What if: the same score with the suspected label errors ({ex['label_issues']}), outliers "
               f"({ex['outliers']}) and all but one image of each duplicate group ({ex['duplicates']}) removed from the "
               f"dataset, as queries and as results. Measured here on {what_if['n_queries_without']:,} remaining queries.")

issues, dups, outs, leaks = result["label_issues"], result["near_duplicates"], result["outliers"], result["leaks"]
tab_names = [f"Suspected label errors ({len(issues)})", f"Near-duplicates ({len(dups)})", f"Outliers ({len(outs)})"]
if result["split_layout"]:
    tab_names.append(f"Leaks between splits ({len(leaks)})")
tab_names.append("Per class")
tabs = dict(zip(tab_names, st.tabs(tab_names)))

with tabs[tab_names[0]]:
    if not result["classes"]:
        st.caption("No label issues without classes.")
    elif not issues:
        st.success("cleanlab flags no label as likely wrong.")
    else:
        st.caption("given class → class the probe suggests · confidence = 1 − the probe's out-of-fold probability of the "
                   "given class (cleanlab's self-confidence label quality)")
        st.caption(curation.probe_text(result))
        image_grid(page_of(issues, "quality.issues_page"),
                   lambda r: f"{r['given']} → **{r['suggested']}** · {r['confidence']:.2f}", "quality.issue")
    download(issues, "label_issues", "quality.dl_issues")

with tabs[tab_names[1]]:
    if dups:
        st.caption("exact: identical files · perceptual: 64-bit perceptual hashes within a few bits · features: "
                   "cleanlab's near-duplicate check (far closer than typical nearest neighbours). Most likely first.")
        pair_rows(page_of(dups, "quality.dups_page"), "quality.dup")
    else:
        st.success("No duplicates found.")
    download(dups, "near_duplicates", "quality.dl_dups")

with tabs[tab_names[2]]:
    if outs:
        st.caption("cleanlab's outlier score from the distances to the nearest neighbours: lower = more unusual.")
        image_grid(page_of(outs, "quality.outs_page"), lambda r: f"score {r['score']:.3f}", "quality.outlier")
    else:
        st.success("cleanlab flags no image as an outlier.")
    download(outs, "outliers", "quality.dl_outs")

if result["split_layout"]:
    with tabs[tab_names[3]]:
        if leaks:
            st.caption("Duplicates whose two images are in different splits: a test image the model has seen in training.")
            pair_rows(page_of(leaks, "quality.leaks_page"), "quality.leak", splits=True)
        else:
            st.success("No duplicates across splits.")
        download(leaks, "leaks", "quality.dl_leaks")

with tabs["Per class"]:
    if result["class_summary"]:
        df = pd.DataFrame(result["class_summary"])
        st.dataframe(df, hide_index=True, width="stretch", column_config={
            "label_issue_rate": st.column_config.ProgressColumn("label issue rate", format="percent", min_value=0, max_value=1),
            "mean_score": st.column_config.NumberColumn("mean search score", format="%.1f")})
        download(result["class_summary"], "per_class", "quality.dl_classes")
    else:
        st.caption("No classes in this dataset.")

st.caption(f"{model_name} · {layer} · computed in {result['seconds']:.1f} s on this server, cached on disk "
           "(a new dataset content, model, layer or setting recomputes it).")
