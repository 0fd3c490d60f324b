"""Benchmark: accuracy versus latency of the models, measured on this machine."""

import pandas as pd
import streamlit as st

from cnnviz import workflows
from cnnviz.adapt import adapted_names
from cnnviz.benchmark import (COLUMNS, TIMING_COLUMNS, accuracy_note, advice, find_cached_benchmark,
                              latest_cached_benchmark, pareto_front)
from cnnviz.models import MODELS
from cnnviz.ui import cached, charts, widgets

X_AXES = {"latency_ms_b1_p50": ("batch-1 latency p50 (ms, log)", True), "throughput_b32_img_s": ("batch-32 throughput (img/s, log)", False),
          "flops": ("FLOPs per image (log)", True), "size_mb": ("weights file (MB, log)", True)}
Y_AXES = {"knn_accuracy": "5-NN accuracy on this dataset (measured)", "mean_score": "mean search score on this dataset (measured)",
          "linear_probe_accuracy": "linear-probe accuracy, 5-fold CV (measured)", "published_top1": "ImageNet top-1 % (published)"}
TIMING_FORMAT = {"latency_ms_b1_p50": st.column_config.NumberColumn("b1 p50 ms", format="%.2f"),
                 "latency_ms_b1_p95": st.column_config.NumberColumn("b1 p95 ms", format="%.2f"),
                 "throughput_b32_img_s": st.column_config.NumberColumn("b32 img/s", format="%.0f"),
                 "peak_memory_mb": st.column_config.NumberColumn("peak MB", format="%.0f")}

st.title("Benchmark — accuracy versus latency")
st.caption("Every figure is measured on the machine this server runs on, except ImageNet top-1, which is published "
           "(source per model in the table), and the *Measured elsewhere* timings, which were measured on the machine "
           "they name. Models without ImageNet weights here are timed with random weights (same speed) and get no accuracy.")
ref, ds = widgets.selected_dataset()
models = st.multiselect("Models", list(MODELS) + adapted_names(), default=list(MODELS), key="bench.models",
                        help="The registry, then adapted models (Adapt page): base network + their projection")
if set(models) & set(adapted_names()):
    st.caption("Adapted models: accuracy here is measured on the whole dataset; on the dataset they were trained on "
               "that includes their training images and is optimistic. The Adapt page reports held-out figures.")
if not models:
    st.info("Choose at least one model.")
    st.stop()
for other in cached.reference_benchmarks():
    backend = {"jax": "JAX", "tensorflow": "TensorFlow"}.get(other["versions"].get("keras backend", "tensorflow"))
    with st.expander(f"Measured elsewhere: {other['device']}, Keras on {backend}"):
        st.caption(f"Timing only, shipped with cnnviz (benchmarks/results): measured {other['date']} · "
                   + ", ".join(f"{k} {v}" for k, v in other["versions"].items())
                   + f" · batch-1 over {other['settings']['runs_b1']} calls, batch-32 median of "
                   f"{other['settings']['runs_throughput']}; peak memory = XLA's plan (JAX) or TF's allocator peak.")
        st.dataframe(pd.DataFrame([r for r in other["rows"] if r["model"] in models], columns=list(TIMING_COLUMNS)),
                     hide_index=True, width="stretch", column_config=TIMING_FORMAT)
dataset = ds if ds.labelled else None
result = find_cached_benchmark(models, dataset)
c1, c2 = st.columns([1, 3])
run = c1.button("Run benchmark" if result is None else "Re-run", type="primary")
latest_note = None
if result is None and not run:
    # First visit: show the newest measurement there is (this machine's, else the shipped one) rather than nothing.
    result, where = latest_cached_benchmark(), "this machine's cache"
    if result is None and cached.reference_benchmarks():
        result, where = cached.reference_benchmarks()[0], "shipped with cnnviz (benchmarks/results), measured elsewhere"
    if result is None:
        c2.info(f"Not measured yet for these {len(models)} models on this machine. On 2 CPU cores all 13 take about 5 minutes.")
        st.stop()
    latest_note = (f"These {len(models)} models are not measured on this machine yet: showing the latest measurement "
                   f"({where}). **Run benchmark** measures them here (on 2 CPU cores all 13 take about 5 minutes).")
if run:
    bar = st.progress(0.0, text="Benchmarking…")
    result = workflows.benchmark(models, dataset, use_cache=False,
                                 progress=lambda i, n: bar.progress(i / n, text=f"Benchmarking {models[i]} ({i + 1}/{n})" if i < n else "Done"))
    bar.empty()
if latest_note:
    c2.info(latest_note, icon=":material/history:")
c2.caption(f"Measured {result['date']} on **{result['device']}** · dataset {result['dataset'] or '— (speed only: unlabelled)'} · "
           + ", ".join(f"{k} {v}" for k, v in result["versions"].items()))

rows = [r for r in result["rows"] if r["model"] in models] or result["rows"]  # a latest result may cover other models
df = pd.DataFrame(rows).reindex(columns=list(COLUMNS))
a, b = st.columns(2)
x = a.selectbox("x axis", list(X_AXES), format_func=lambda k: X_AXES[k][0], key="bench.x")
y = b.selectbox("y axis", list(Y_AXES), format_func=Y_AXES.get, key="bench.y")
rows = df.to_dict("records")
front = pareto_front(rows, x, y, lower_x_is_better=X_AXES[x][1])
if df[y].notna().any():
    st.altair_chart(charts.accuracy_vs_cost(df, x, y, X_AXES[x][0], Y_AXES[y], front), width="stretch")
    st.caption(f"Dashed line and outlined points: the Pareto front ({', '.join(front)}) — no other model is both "
               f"{'faster' if X_AXES[x][1] else 'higher-throughput'} and more accurate.")
else:
    st.warning(f"No model has a value for '{Y_AXES[y]}' here.")
if (note := accuracy_note(rows)) and y in ("knn_accuracy", "mean_score"):
    st.caption(note)
st.subheader("How to choose")
for line in advice(rows, accuracy=y if y != "published_top1" else "knn_accuracy"):
    st.markdown("- " + line)
st.subheader("All figures")
st.dataframe(df, hide_index=True, width="stretch")
st.caption(result["settings"]["flops"] + f"; batch-1 latency over {result['settings']['runs_b1']} compiled calls after warm-up; "
           "size = the weights saved as .weights.h5; peak memory is reported on GPU only.")
st.download_button("Download CSV", df.to_csv(index=False).encode(), file_name="cnnviz-benchmark.csv", mime="text/csv")
