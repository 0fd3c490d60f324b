"""The feature map's prebuilt Vega-Lite spec: data as Arrow bytes, a copy per draw, distinct tooltip fields."""

import pandas as pd
import pyarrow as pa

from cnnviz.ui import charts


def _frame(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame({"x": range(n), "y": range(n), "id": [f"c/{i}.png" for i in range(n)], "label": ["c"] * n,
                         "role": ["query"] + ["other"] * (n - 1), "image": [f"data:image/jpeg;base64,{i}" for i in range(n)]})


def test_spec_carries_every_row_as_arrow_bytes_and_the_click_selection():
    df = _frame()
    spec = charts.feature_map_spec(df, "UMAP")
    (name, data), = spec["datasets"].items()
    assert spec["data"] == {"name": name}
    table = pa.ipc.open_stream(data).read_all().to_pandas()
    pd.testing.assert_frame_equal(table, df)
    assert [p["name"] for p in spec["params"]] == [charts.MAP_SELECTION]


def test_tooltip_fields_do_not_collide():
    """vega-tooltip draws a field titled "image" as a picture: the file id must not be titled so."""
    spec = charts.feature_map_spec(_frame(), "UMAP")
    titles = [t.get("title", t["field"]) for t in spec["encoding"]["tooltip"]]
    assert titles.count("image") == 1 and len(set(titles)) == len(titles)


def test_fresh_spec_is_a_copy_streamlit_may_edit():
    spec = charts.feature_map_spec(_frame(), "UMAP")
    copy = charts.fresh_spec(spec)
    copy.pop("datasets")
    copy["encoding"]["x"]["title"] = "changed"
    assert "datasets" in spec and spec["encoding"]["x"].get("title") != "changed"
    assert charts.fresh_spec(spec)["datasets"] == spec["datasets"]


def test_per_class_html_sorts_best_first_bolds_the_query_class_and_escapes_names():
    import re

    from cnnviz.ui.charts import per_class_html

    html = per_class_html({"a": 40.0, "<b>": 90.5, "c": 10.0, "d": 120.0}, query_class="a")
    rows = re.findall(r"<tr([^>]*)><td[^>]*>([^<]*)</td><td[^>]*>([^<]*)</td></tr>", html)
    assert [(name, value) for _, name, value in rows] == [("d", "120.0"), ("&lt;b&gt;", "90.5"), ("a", "40.0"), ("c", "10.0")]
    assert [name for attrs, name, _ in rows if "font-weight:bold" in attrs] == ["a"]  # only the query's class
    bars = re.findall(r"#9db4d9 ([\d.]+)%", html)
    assert bars == ["100.0", "90.5", "40.0", "10.0"]  # in-cell bars, clipped to 0-100
    assert "<b>" not in html  # a folder name is text, not markup
    assert "font-weight:bold" not in per_class_html({"a": 1.0})  # no query: nothing bold


def test_cached_map_spec_follows_the_projection_metric():
    """Two UMAP views of one layer under different metrics are different maps, not one cached spec."""
    import numpy as np

    from cnnviz.ui import cached

    n = len(cached.dataset("stamps").ids)
    rng = np.random.default_rng(0)
    views = [cached.MapView("umap", "umap", rng.normal(size=(n, 2)), metric=m) for m in ("cosine", "euclidean")]
    xs = []
    for view in views:
        spec, drawn = cached.feature_map_spec("efficientnet_lite0", "stamps", "avg_pool", "avg", view, {}, "UMAP")
        (data,) = spec["datasets"].values()
        xs.append(pa.ipc.open_stream(data).read_all().to_pandas()["x"].to_numpy())
        assert drawn == n
    assert not np.array_equal(xs[0], xs[1])
    np.testing.assert_allclose(np.sort(xs[1]), np.sort(views[1].points[:, 0]))
