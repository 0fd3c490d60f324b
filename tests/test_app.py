"""Streamlit AppTest for every page: change each widget, results change, no exception."""

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 300  # a cold page builds a TF model and extracts features


def open_upload_tab(at):
    """The Search page's uploader lives in a lazy tab: open it (as a click on the tab would)."""
    at.session_state["search.query_source"] = "Upload an image"
    return at.run()


def open_add_dataset(at: AppTest) -> AppTest:
    """The sidebar's "Add a dataset" expander is lazy: open it (as a click on it would)."""
    at.session_state["cnnviz.add_dataset"] = True
    return at.run()


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def click_first(at: AppTest, prefix: str) -> str:
    """What a click on the gallery's first image of a class does (AppTest cannot click inside the sheet
    component; tests/test_browser.py clicks it in a real browser)."""
    cls = prefix.split("_", 1)[1].rstrip("/")
    from cnnviz.ui import cached

    query = next(i for i in cached.dataset(at.session_state["cnnviz.dataset"]).ids if i.startswith(cls + "/"))
    at.session_state["cnnviz.query"] = query
    at.run()
    assert not at.exception
    return query


def result_count(at: AppTest) -> int:
    """Results shown in the grid (one st.html element, a figure per hit)."""
    return sum(h.value.count('<figure class="cnnviz-hit"') for h in at.get("html"))


def metric_value(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_home_click_shows_results_and_score():
    at = new_app()
    assert at.selectbox(key="cnnviz.dataset").value == "stamps"
    query = click_first(at, "home_birds/")
    assert any(query in s.value for s in at.subheader)
    assert 0 <= float(metric_value(at, "Search score").split()[0]) <= 100
    assert result_count(at) == 15
    assert any("Click an image" in c.value for c in at.caption)  # the gallery is still there
    assert any("server time for the results and gallery" in c.value for c in at.caption)  # the fragment's own
    next(b for b in at.button if b.label == "Clear query").click().run()
    assert not [m for m in at.metric if m.label == "Search score"]


def test_home_dataset_change_clears_the_query():
    at = new_app()
    at.session_state["cnnviz.query"] = "birds/magpie.jpg"
    at.selectbox(key="cnnviz.dataset").set_value("fashion").run()
    assert not at.exception
    assert at.session_state["cnnviz.query"] is None  # on_change cleared it
    assert any("fashion: 200 images" in s.value for s in at.subheader)


def test_home_model_change_changes_results():
    at = new_app()
    click_first(at, "home_birds/")
    before = metric_value(at, "Search score")
    at.selectbox(key="cnnviz.model").set_value("mobilenet_v2_tv").run()
    assert not at.exception
    assert metric_value(at, "Search score") != before


def test_bad_folder_shows_error_and_keeps_dataset(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("CNNVIZ_DATA_ROOTS", str(tmp_path))  # server folders come from a picker under the roots
    at = open_add_dataset(new_app())
    at.selectbox(key="cnnviz.folder_pick").set_value(str(tmp_path / "empty"))
    next(b for b in at.button if b.label == "Open folder").click().run()
    assert not at.exception
    assert any("no images found" in e.value for e in at.error)
    assert at.selectbox(key="cnnviz.dataset").value == "stamps"


def test_good_folder_becomes_the_dataset(tiny_folder, monkeypatch):
    monkeypatch.setenv("CNNVIZ_DATA_ROOTS", str(tiny_folder.parent))
    at = open_add_dataset(new_app())
    at.selectbox(key="cnnviz.folder_pick").set_value(str(tiny_folder))
    next(b for b in at.button if b.label == "Open folder").click().run()
    assert not at.exception
    assert at.selectbox(key="cnnviz.dataset").value == str(tiny_folder)
    assert any("12 images" in s.value for s in at.subheader)


def test_search_page_every_widget_changes_results():
    at = new_app()
    at.switch_page("app_pages/search.py").run()
    assert not at.exception
    assert not any("Results for" in s.value for s in at.subheader)  # no query yet: the picker, open
    assert any("Click an image to search with it" in c.value for c in at.caption)
    at.session_state["cnnviz.query"] = "birds/magpie.jpg"  # what a row selection in the picker table sets
    at.run()
    assert any("Results for birds/magpie.jpg" in s.value for s in at.subheader)
    (table,) = [h.value for h in at.get("html") if "cnnviz-per-class" in h.value]  # one per-class table, every class
    assert all(f">{c}</td>" in table for c in ("birds", "fruit", "money", "roadsigns"))
    assert re.search(r'<tr style="font-weight:bold"><td[^>]*>birds</td>', table) and table.count("font-weight:bold") == 1
    mean = lambda: metric_value(at, "Mean search score")
    m0 = mean()

    at.selectbox(key="search.metric").set_value("chebyshev").run()
    assert not at.exception and mean() != m0
    at.selectbox(key="search.metric").set_value("minkowski").run()
    assert at.slider(key="search.p").value == 3.0
    assert any("p = 2 ranks exactly like euclidean" in c.value for c in at.caption)
    at.slider(key="search.p").set_value(1.0).run()
    assert not at.exception
    m_p1 = mean()
    at.selectbox(key="search.metric").set_value("manhattan").run()
    assert mean() == m_p1  # minkowski p=1 ranks exactly like manhattan

    at.selectbox(key="search.layer").set_value("stem_relu").run()
    assert not at.exception and mean() != m_p1
    assert any("pooled vector of 32" in c.value for c in at.caption)
    at.selectbox(key="search.pooling").set_value("grid2").run()
    assert any("pooled vector of 128" in c.value for c in at.caption)
    before = {m.label: m.value for m in at.metric}
    at.number_input(key="search.top_k").set_value(5).run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric} == before  # Top k shows fewer results; the score stays at k = 15
    assert result_count(at) == 5
    assert any(m.label == "Precision@15" for m in at.metric)
    # Lazy tabs: the map runs only when its tab is open (the tab is bound to ?view=…).
    assert not [r for r in at.radio if r.key == "search.projection"]
    at.session_state["view"] = "Feature map"
    at.run()
    assert not at.exception and not [m for m in at.metric if m.label == "Mean search score"]  # figures tab not run
    at.radio(key="search.projection").set_value("pca").run()
    assert not at.exception
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    assert any(c.value.startswith("Hover a point") for c in at.caption)


def test_compare_page_side_by_side_and_heatmap():
    at = new_app()
    click_first(at, "home_fruit/")
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception
    assert at.multiselect(key="compare.models").value == ["efficientnet_lite0", "mobilenet_v2_tv", "efficientnet_lite2"]
    texts = lambda: [m.value for m in at.markdown if "· score" in m.value]
    assert len(texts()) == 3
    at.multiselect(key="compare.models").set_value(["efficientnet_lite0", "mobilenet_v2_tv"]).run()
    assert not at.exception and len(texts()) == 2
    before = texts()
    at.selectbox(key="compare.metric").set_value("chebyshev").run()
    assert not at.exception and texts() != before
    at.selectbox(key="compare.layer.mobilenet_v2_tv").set_value("block10_out").run()
    assert not at.exception
    assert at.get("download_button")


def test_compare_needs_two_models():
    at = new_app()
    at.switch_page("app_pages/compare.py").run()
    at.multiselect(key="compare.models").set_value(["efficientnet_lite0"]).run()
    assert any("at least two" in i.value for i in at.info)


def _zip_bytes(entries: dict[str, bytes], deflate: bool = False) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _png_bytes(size=(40, 30), color=(200, 40, 40)) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("entries,message", [
    ({"ok/a.png": "PNG", "../escape.png": "PNG"}, "escapes the archive folder"),
    ({"/etc/evil.png": "PNG"}, "absolute path"),
    ({"notes.txt": b"hello"}, "no image files"),
    ({"a/big.png": b"\0" * 50_000_000}, "zip bomb"),
])
def test_bad_zip_upload_shows_error_and_keeps_dataset(entries, message):
    at = open_add_dataset(new_app())
    data = {k: (_png_bytes() if v == "PNG" else v) for k, v in entries.items()}
    at.file_uploader(key="cnnviz.zip_upload").set_value(("bad.zip", _zip_bytes(data, deflate=True), "application/zip")).run()
    assert not at.exception
    assert any(message in e.value for e in at.error)
    assert at.selectbox(key="cnnviz.dataset").value == "stamps"


def test_broken_zip_upload():
    at = open_add_dataset(new_app())
    at.file_uploader(key="cnnviz.zip_upload").set_value(("broken.zip", b"PK\x03\x04garbage", "application/zip")).run()
    assert not at.exception
    assert any("not a readable zip" in e.value for e in at.error)


def test_zip_upload_becomes_the_dataset():
    at = open_add_dataset(new_app())
    png = _png_bytes()
    data = _zip_bytes({"Set/red/a.png": png, "Set/red/b.png": _png_bytes(color=(250, 0, 0)),
                       "Set/blue/c.png": _png_bytes(color=(0, 0, 250)), "Set/blue/d.png": _png_bytes(color=(0, 0, 200))})
    at.file_uploader(key="cnnviz.zip_upload").set_value(("colours.zip", data, "application/zip")).run()
    assert not at.exception
    assert at.selectbox(key="cnnviz.dataset").value.endswith(".zip")
    assert any("4 images, 2 classes" in s.value for s in at.subheader)


def _bomb_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (30000, 30000)).save(buf, format="PNG", optimize=True)  # ~100 KB declaring 900 Mpx
    return buf.getvalue()


@pytest.mark.parametrize("name,content,message", [
    ("notes.jpg", b"this is text", "not an image file"),
    ("broken.png", "TRUNCATED", "broken or truncated"),
    ("bomb.png", "BOMB", "decompression bomb"),
])
def test_bad_query_upload_shows_error(name, content, message):
    at = new_app()
    at.switch_page("app_pages/search.py").run()
    content = {"TRUNCATED": lambda: _png_bytes((64, 64))[:70], "BOMB": _bomb_png}.get(content, lambda: content)()
    open_upload_tab(at).file_uploader(key="search.upload").set_value((name, content, "image/png")).run()
    assert not at.exception
    assert any(message in e.value for e in at.error)


def test_uploaded_query_image_is_searched_without_a_score(photos):
    at = new_app()
    at.switch_page("app_pages/search.py").run()
    open_upload_tab(at).file_uploader(key="search.upload").set_value(("coffee.jpg", photos["coffee"].read_bytes(), "image/jpeg")).run()
    assert not at.exception
    assert any("Results for coffee.jpg" in s.value for s in at.subheader)
    assert not [m for m in at.metric if m.label == "Search score"]
    assert any("No search score" in c.value for c in at.caption)


def test_benchmark_page_runs_and_charts():
    at = new_app()
    at.switch_page("app_pages/benchmark.py").run()
    assert not at.exception
    at.multiselect(key="bench.models").set_value(["efficientnet_lite0", "mobilenet_v2"]).run()
    run = next(b for b in at.button if b.label in ("Run benchmark", "Re-run"))
    run.click().run()
    assert not at.exception
    assert any("Measured" in c.value and ("CPU" in c.value or "GPU" in c.value) for c in at.caption)
    assert any(e.label.startswith("Measured elsewhere: GPU: NVIDIA H100") for e in at.expander)
    assert any("Pareto front" in c.value for c in at.caption)
    advice = " ".join(m.value for m in at.markdown)
    assert "Most accurate here: **efficientnet_lite0**" in advice and "Fastest overall" in advice
    for x in ("throughput_b32_img_s", "flops", "size_mb"):
        at.selectbox(key="bench.x").set_value(x).run()
        assert not at.exception
    at.selectbox(key="bench.y").set_value("published_top1").run()
    assert not at.exception and any("Pareto front" in c.value for c in at.caption)
    assert at.get("download_button")
    # A new session finds the cached measurement and offers a re-run.
    again = new_app()
    again.switch_page("app_pages/benchmark.py").run()
    again.multiselect(key="bench.models").set_value(["efficientnet_lite0", "mobilenet_v2"]).run()
    assert any(b.label == "Re-run" for b in again.button)


def test_model_explorer_channels_fill_in_and_inspect():
    import time

    at = new_app()
    at.switch_page("app_pages/explorer.py").run()
    assert not at.exception
    at.selectbox(key="explorer.layer").set_value("stem_relu").run()
    at.select_slider(key="explorer.steps").set_value(8).run()
    assert not at.exception
    deadline = time.time() + 240
    while any("optimising" in c.value for c in at.caption) and time.time() < deadline:
        time.sleep(2)
        at.run()
    assert not at.exception
    channel_captions = [c.value for c in at.caption if c.value.startswith("ch ")]
    assert not any("optimising" in c for c in channel_captions)
    assert any("30 of 32 channels" in c.value for c in at.caption)
    from cnnviz.featureviz import evenly_spaced_channels

    at.selectbox(key="explorer.channel").set_value(evenly_spaced_channels(32, 30)[3]).run()
    assert not at.exception
    assert not any("still being optimised" in i.value for i in at.info)  # its act-max image is shown
    next(b for b in at.button if b.label == "Visualise these classes").click().run()  # final layer of a classifier
    assert not at.exception
    visuals = at.session_state["explorer.class_visuals"]
    assert [v["channel"] for v in visuals] == [967, 281]  # espresso, tabby (the defaults)
    assert all(v["final_activation"] > v["baseline_activation"] for v in visuals)


def _attribution_page(methods: list[str]) -> AppTest:
    at = new_app()
    at.switch_page("app_pages/attribution.py").run()
    assert not at.exception
    at.multiselect(key="attr.methods").set_value(methods).run()
    assert not at.exception
    return at


def _overlay_captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption if c.value.startswith("deletion AUC")]


def test_attribution_page_fast_methods_and_target_change():
    at = _attribution_page(["saliency", "gradcam"])
    assert len(_overlay_captions(at)) == 2
    charts = [str(c.proto) for c in at.get("vega_lite_chart")]  # deletion and insertion, both overlays on each
    assert len(charts) == 2 and "deletion curve" in charts[0] and "insertion curve" in charts[1]
    assert any(b.label.startswith("Download the grid") for b in at.get("download_button"))
    at.selectbox(key="attr.target").set_value(967).run()
    assert not at.exception
    assert sum("gradcam · espresso" in str(el.proto) for el in at.get("image")) == 1
    at.multiselect(key="attr.models").set_value(["efficientnet_lite0", "mobilenet_v2_tv"]).run()
    assert not at.exception
    assert len(_overlay_captions(at)) == 4  # rows = models, columns = methods
    assert len(at.get("vega_lite_chart")) == 4  # a pair of curve charts per model row


def test_attribution_page_lime_runs_in_the_background():
    import time

    at = _attribution_page(["gradcam", "lime"])
    at.number_input(key="attr.lime_samples").set_value(50).run()
    deadline = time.time() + 240
    while any("running in the background" in c.value for c in at.caption) and time.time() < deadline:
        time.sleep(2)
        at.run()
    assert not at.exception
    assert len(_overlay_captions(at)) == 2
    at.radio(key="attr.lime_view").set_value("heatmap").run()
    assert not at.exception and len(_overlay_captions(at)) == 2


def test_attribution_page_upload(photos):
    at = _attribution_page(["gradcam"])
    at.radio(key="attr.source").set_value("Upload").run()
    assert any("Upload an image" in i.value for i in at.info)
    at.file_uploader(key="attr.upload").set_value(("coffee.jpg", photos["coffee"].read_bytes(), "image/jpeg")).run()
    assert not at.exception
    assert at.dataframe[0].value["label"].iloc[0] == "espresso"
    at.file_uploader(key="attr.upload").set_value(("notes.png", b"this is text", "image/png")).run()
    assert not at.exception
    assert any("not an image file" in e.value for e in at.error)


def _gallery_caption(at: AppTest) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Images "))


def test_home_gallery_pages_and_filters():
    at = new_app()
    assert _gallery_caption(at).startswith("Images 1–60 of 185.")
    at.button(key="home.next").click().run()
    assert not at.exception and _gallery_caption(at).startswith("Images 61–120 of 185.")
    assert at.number_input(key="home.page").value == 2
    at.number_input(key="home.page").set_value(4).run()
    assert _gallery_caption(at).startswith("Images 181–185 of 185.")
    assert at.button(key="home.next").disabled
    at.button(key="home.random").click().run()
    assert at.number_input(key="home.page").value in (1, 2, 3)  # another page
    at.selectbox(key="home.class").set_value("fruit").run()  # a filter goes back to page 1
    assert at.number_input(key="home.page").value == 1
    assert _gallery_caption(at).startswith("Images 1–20 of 20 matching (dataset: 185).")
    at.text_input(key="home.name").set_value("APPLE").run()
    assert "matching" in _gallery_caption(at) and not at.exception
    at.text_input(key="home.name").set_value("no-such-file").run()
    assert any("No image matches" in i.value for i in at.info)
    at.text_input(key="home.name").set_value("").run()
    at.button_group(key="home.view").set_value("list").run()  # the list view: one table of this page
    assert not at.exception and len(at.dataframe) == 1 and len(at.dataframe[0].value) == 20


def test_gallery_page_is_clamped_when_the_dataset_shrinks():
    at = new_app()
    at.number_input(key="home.page").set_value(4).run()
    at.selectbox(key="cnnviz.dataset").set_value("fashion").run()  # 200 images: 4 pages still exist
    assert _gallery_caption(at).startswith("Images 181–200 of 200.")
    at.selectbox(key="home.class").set_value("bag").run()
    assert at.number_input(key="home.page").value == 1


def test_link_restores_the_view_and_widgets_update_the_link():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"dataset": "fashion", "model": "mobilenet_v2_tv", "query": "bag/t10k_00030.png"})
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="cnnviz.dataset").value == "fashion"
    assert at.selectbox(key="cnnviz.model").value == "mobilenet_v2_tv"
    assert any("Most similar to bag/t10k_00030.png" in s.value for s in at.subheader)
    at.selectbox(key="cnnviz.dataset").set_value("stamps").run()
    assert at.query_params["dataset"] == "stamps" and "query" not in at.query_params


def test_link_to_the_search_page_sets_layer_and_metric():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"dataset": "stamps", "layer": "block5c_out", "metric": "manhattan", "query": "fruit/apple_fuji.jpg"})
    at.run()
    at.switch_page("app_pages/search.py").run()
    assert not at.exception
    assert at.selectbox(key="search.layer").value == "block5c_out"
    assert at.selectbox(key="search.metric").value == "manhattan"
    at.selectbox(key="search.metric").set_value("cosine").run()
    assert at.query_params["metric"] == "cosine" and at.query_params["layer"] == "block5c_out"


def test_link_outside_the_data_roots_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_DATA_ROOTS", str(tmp_path / "allowed"))
    (tmp_path / "allowed").mkdir()
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"dataset": "/etc", "metric": "nope", "query": "x.png"})
    at.run()
    assert not at.exception
    text = " ".join(e.value for e in at.error)
    assert "dataset '/etc'" in text and "outside the folders this server allows" in text and "metric 'nope'" in text
    assert at.selectbox(key="cnnviz.dataset").value == "stamps" and at.session_state["cnnviz.query"] is None


def test_link_to_a_folder_inside_the_data_roots_opens_it(tiny_folder, monkeypatch):
    monkeypatch.setenv("CNNVIZ_DATA_ROOTS", str(tiny_folder.parent))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"dataset": str(tiny_folder), "query": "fruit/" + sorted(p.name for p in (tiny_folder / "fruit").iterdir())[0]})
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="cnnviz.dataset").value == str(tiny_folder.resolve())
    assert any("Most similar to fruit/" in s.value for s in at.subheader)


def test_benchmark_page_first_visit_shows_the_latest_measurement(monkeypatch):
    from cnnviz import benchmark

    monkeypatch.setattr(benchmark, "latest_cached_benchmark", lambda: None)  # nothing measured on this machine
    at = new_app()
    at.switch_page("app_pages/benchmark.py").run()
    assert not at.exception
    assert any("showing the latest measurement (shipped with cnnviz" in i.value for i in at.info)
    assert any("NVIDIA H100" in c.value for c in at.caption)  # the shipped file's device
    assert len(at.dataframe) >= 2 and any(b.label == "Run benchmark" for b in at.button)
