"""Dataset views (report, map) are computed once, kept in the disk cache, and made in the background for
large datasets while the Search page stays usable."""

from __future__ import annotations

import time

import numpy as np
from streamlit.testing.v1 import AppTest

from cnnviz import overview
from cnnviz.projection import ProjectionConfig
from cnnviz.scoring import evaluate_retrieval

from test_app import APP, TIMEOUT, metric_value


def test_report_is_stored_and_read_back_unchanged(isolated_cache, rng):
    x = rng.normal(size=(60, 8)).astype(np.float32)
    labels = [str(i % 3) for i in range(60)]
    key = overview.report_key("feats", "cosine", None)
    assert overview.load_report(key) is None
    made = overview.compute_report(key, x, labels, "cosine", None)
    assert made == evaluate_retrieval(x, labels, "cosine").to_dict(per_query=True)
    assert overview.load_report(key) == made
    assert overview.report_key("feats", "euclidean", None) != key  # each setting its own entry


def test_projection_is_stored_per_config(isolated_cache, rng):
    x = rng.normal(size=(50, 6)).astype(np.float32)
    config = ProjectionConfig(method="pca")
    key = overview.projection_key("feats", config)
    points = overview.compute_projection(key, x, config)
    assert points.shape == (50, 2)
    np.testing.assert_array_equal(overview.load_projection(key), points)
    assert overview.projection_key("feats", ProjectionConfig(method="umap")) != key


def test_full_cache_still_returns_the_view(isolated_cache, rng, monkeypatch):
    from cnnviz import cache

    def full(*_a, **_k):
        raise cache.CacheFullError("quota reached")

    monkeypatch.setattr(cache, "save_arrays", full)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    report = overview.compute_report("k", x, ["a", "b"] * 10, "cosine", None)
    assert report["n_images"] == 20 and overview.load_report("k") is None


def test_large_dataset_figures_come_from_a_background_job(monkeypatch):
    """Above BACKGROUND_ABOVE images the Search page shows progress at once, then the figures and the map."""
    import threading

    import cnnviz.ui.cached as cached

    monkeypatch.setattr(cached, "BACKGROUND_ABOVE", 10)  # the 185-image sample set counts as large here
    monkeypatch.setattr(overview, "OVERVIEW_VERSION", f"test-{time.time()}")  # nothing stored by earlier tests
    release, compute = threading.Event(), overview.compute_report

    def held_report(*args, **kwargs):
        release.wait(60)
        return compute(*args, **kwargs)

    monkeypatch.setattr(overview, "compute_report", held_report)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("app_pages/search.py").run()
    assert not at.exception
    assert "Mean search score" not in {m.label for m in at.metric}
    assert any("in the background" in p.proto.text for p in at.get("progress"))
    release.set()
    deadline = time.time() + 120
    while "Mean search score" not in {m.label for m in at.metric} and time.time() < deadline:
        time.sleep(0.5)
        at.run()
    assert not at.exception
    assert float(metric_value(at, "Mean search score")) > 0
    at.session_state["view"] = "Feature map"  # the map's lazy tab: its job runs in the background too
    at.run()
    while not (at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")) and time.time() < deadline:
        time.sleep(0.5)
        at.run()
    assert not at.exception
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
