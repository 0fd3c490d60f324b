"""Altair charts for the pages: pure functions from data to a chart."""

from __future__ import annotations

import copy
from html import escape

import altair as alt
import pandas as pd
import pyarrow as pa

MAP_SELECTION = "picked"


def per_class_html(per_class: dict[str, float], query_class: str | None = None) -> str:
    """Per-class mean search scores as an HTML table with in-cell bars (0–100), best first; the query's class in
    bold. For ``st.html``: one element in the browser.

    Not a Vega-Lite chart (Vega's code loaded and compiled in the browser cost the Search page 0.1-0.4 s), and not
    ``st.table`` either: since Streamlit 1.5x every ``st.table`` cell is a Markdown element of its own (22 for ten
    classes), and a styled table is rendered by pandas' Styler on the server on every run. Class names are folder
    names, so they are escaped.
    """
    cell = "padding:0.25rem 0.5rem;border-bottom:1px solid rgba(128,128,128,0.25);text-align:left"
    body = []
    for name, score in sorted(per_class.items(), key=lambda kv: -kv[1]):  # stable: ties keep the report's order
        bold = ' style="font-weight:bold"' if name == query_class else ""
        bar = min(max(score, 0.0), 100.0)
        body.append(f'<tr{bold}><td style="{cell}">{escape(name)}</td><td style="{cell};background:linear-gradient('
                    f'90deg,#9db4d9 {bar:.1f}%,transparent {bar:.1f}%)">{score:.1f}</td></tr>')
    return (f'<table class="cnnviz-per-class" style="border-collapse:collapse;width:100%">'
            f'<thead><tr><th style="{cell}">class</th><th style="{cell}">mean search score</th></tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def feature_map(df: pd.DataFrame, title: str) -> alt.Chart:
    """Scatter of a 2-D projection: colour = class, query and results highlighted, click selects.

    ``df`` columns: x, y, id, label, role ("query" | "result" | "other"), image (data URI).
    The ``image`` tooltip field renders as a thumbnail.
    """
    pick = alt.selection_point(name=MAP_SELECTION, fields=["id"], on="click", toggle=False)
    base = alt.Chart(df).encode(
        x=alt.X("x:Q", axis=None), y=alt.Y("y:Q", axis=None),
        tooltip=[alt.Tooltip("id:N", title="file"), alt.Tooltip("label:N", title="class"), alt.Tooltip("image:N")],
    )
    points = base.mark_circle(opacity=0.85).encode(
        color=alt.Color("label:N", title="class", legend=alt.Legend(orient="right")),
        size=alt.Size("role:N", scale=alt.Scale(domain=["query", "result", "other"], range=[400, 140, 45]), legend=None),
        stroke=alt.condition("datum.role != 'other'", alt.value("black"), alt.value(None)),
        strokeWidth=alt.condition("datum.role == 'query'", alt.value(3), alt.value(1)),
    ).add_params(pick)
    return points.properties(title=title, height=460)


def arrow_ipc(df: pd.DataFrame) -> bytes:
    """A frame as Arrow IPC stream bytes, the form Streamlit sends a chart's named dataset in."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def feature_map_spec(df: pd.DataFrame, title: str) -> dict:
    """:func:`feature_map` as a Vega-Lite dict whose dataset is already Arrow bytes, for ``st.vega_lite_chart``.

    Built once per view and cached: ``st.altair_chart`` would validate the spec, convert the 5,000 rows (with
    their ~10 MB of thumbnail data URIs) to Arrow and hash them on every rerun, 0.5–1 s of server time a run
    at 10k–70k images (py-spy). Pass :func:`fresh_spec` of it to Streamlit, which edits the dict it gets.
    """
    spec = feature_map(df.head(0), title).to_dict()
    spec["datasets"] = {spec["data"]["name"]: arrow_ipc(df)}
    spec["usermeta"] = {"embedOptions": {"renderer": "canvas"}}  # what Streamlit picks above 2,000 points anyway
    return spec


def fresh_spec(spec: dict) -> dict:
    """A copy Streamlit may edit (it pops the datasets and patches the spec); the Arrow bytes are shared."""
    small = copy.deepcopy({k: v for k, v in spec.items() if k != "datasets"})
    return {**small, "datasets": dict(spec.get("datasets", {}))}


def score_heatmap(df: pd.DataFrame, metric: str) -> alt.Chart:
    """Model × layer (early → late) heatmap of the dataset's mean search score."""
    d = df[df["metric"] == metric]
    base = alt.Chart(d).encode(
        x=alt.X("layer_index:O", title="layer (1 = earliest, 9 = embedding)"),
        y=alt.Y("model:N", title=None),
        tooltip=["model", "layer", alt.Tooltip("mean_score:Q", format=".1f"), alt.Tooltip("knn_accuracy:Q", format=".3f")],
    )
    rect = base.mark_rect().encode(color=alt.Color("mean_score:Q", title="score", scale=alt.Scale(scheme="viridis", domain=[0, 100])))
    text = base.mark_text(fontSize=11).encode(
        text=alt.Text("mean_score:Q", format=".0f"),
        color=alt.condition("datum.mean_score > 60", alt.value("black"), alt.value("white")),
    )
    return (rect + text).properties(height=alt.Step(38))


def metric_by_model(df: pd.DataFrame) -> alt.Chart:
    """Mean search score of each model's embedding under every metric."""
    d = df[df["layer_index"] == df.groupby("model")["layer_index"].transform("max")]
    return (
        alt.Chart(d)
        .mark_bar()
        .encode(
            x=alt.X("metric:N", title=None), xOffset="model:N",
            y=alt.Y("mean_score:Q", title="mean search score (embedding)", scale=alt.Scale(domain=[0, 100])),
            color=alt.Color("model:N"),
            tooltip=["model", "metric", alt.Tooltip("mean_score:Q", format=".1f"), alt.Tooltip("knn_accuracy:Q", format=".3f")],
        )
        .properties(height=300)
    )


def accuracy_vs_cost(df: pd.DataFrame, x: str, y: str, x_title: str, y_title: str, front: list[str]) -> alt.Chart:
    """Scatter of cost (log x) against accuracy: size = parameters, colour = family, Pareto front drawn."""
    d = df.dropna(subset=[x, y]).copy()
    d["params_m"] = d["params"] / 1e6
    d["on_front"] = d["model"].isin(front)
    tooltip = [c for c in ("model", "family", "weights", "params_m", "size_mb", "flops", "input_size", "latency_ms_b1_p50",
                           "latency_ms_b1_p95", "throughput_b32_img_s", "knn_accuracy", "mean_score",
                           "linear_probe_accuracy", "published_top1") if c in d]
    base = alt.Chart(d).encode(x=alt.X(f"{x}:Q", title=x_title, scale=alt.Scale(type="log", zero=False)),
                               y=alt.Y(f"{y}:Q", title=y_title, scale=alt.Scale(zero=False)))
    points = base.mark_circle(opacity=0.8, stroke="black").encode(
        size=alt.Size("params_m:Q", title="params (M)", scale=alt.Scale(range=[60, 900])),
        color=alt.Color("family:N"), strokeWidth=alt.condition("datum.on_front", alt.value(2), alt.value(0)),
        tooltip=tooltip,
    )
    labels = base.mark_text(dy=-14, fontSize=11).encode(text="model:N")
    line = alt.Chart(d[d["on_front"]].sort_values(x)).mark_line(strokeDash=[5, 4], color="gray").encode(x=f"{x}:Q", y=f"{y}:Q")
    return (line + points + labels).properties(height=440)


def class_mix(counts: pd.Series) -> alt.Chart:
    """Classes of a channel's top-activating images."""
    df = counts.rename_axis("class").reset_index(name="images")
    return (
        alt.Chart(df).mark_bar().encode(
            x=alt.X("images:Q", title="of the 20 most activating images"), y=alt.Y("class:N", sort="-x", title=None),
            tooltip=["class", "images"],
        ).properties(height=alt.Step(20), title="class mix")
    )


def faithfulness_curves(df: pd.DataFrame, curve: str) -> alt.Chart:
    """Target probability while deleting (or inserting) pixels in each overlay's heatmap order, one line per overlay.

    One chart per row of overlays, not one per overlay: Streamlit collapses altair line charts in ~150 px columns.
    """
    better = "falls fast = faithful" if curve == "deletion" else "rises fast = faithful"
    return (
        alt.Chart(df[df["curve"] == curve], title=f"{curve} curve ({better})")
        .mark_line()
        .encode(
            x=alt.X("fraction of pixels:Q", title=f"pixels {'deleted' if curve == 'deletion' else 'inserted'}",
                    axis=alt.Axis(format="%", tickCount=5)),
            y=alt.Y("probability:Q", title="p(target)", scale=alt.Scale(zero=True)),
            color=alt.Color("overlay:N", title="method", sort=None, scale=alt.Scale(scheme="tableau10")),
            tooltip=["overlay", alt.Tooltip("fraction of pixels:Q", format=".0%"), alt.Tooltip("probability:Q", format=".3f")],
        )
    )
