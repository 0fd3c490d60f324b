"""Scale: ANN index vs exact search, resumable chunked precompute, the Ray engine, sampled projections."""

from __future__ import annotations

import json

import numpy as np
import pytest
import ray  # pinned in requirements.txt: a broken install must fail here, not skip

from cnnviz import cache
from cnnviz.ann import AnnIndex, choose_backend, exact_neighbours, get_index, recall_at_k, tuning_queries
from cnnviz.cli import main
from cnnviz.data import open_dataset
from cnnviz.features import extract_features
from cnnviz.projection import ProjectionConfig, pca_2d, points_to_draw, project
from cnnviz.search import METRICS, ExactIndex
from cnnviz.workflows import get_model


def clustered(n: int, dim: int = 48, clusters: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim))
    return (centers[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, dim))).astype(np.float32)


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    return clustered(6_000)


@pytest.mark.parametrize("metric", METRICS)
def test_ivf_index_meets_its_recall_for_every_metric(metric, blobs):
    """FAISS IVF-Flat for every metric (METRIC_L1 / Linf / Lp included), tuned on held-out rows, measured on others."""
    x, tune, test = blobs, np.arange(0, 60), np.arange(60, 120)
    index = AnnIndex.build(x, metric, p=3.0, kind="ivf", nlist=32)
    info = index.tune(x[tune], exact_neighbours(x, x[tune], metric, 15, 3.0, exclude=tune), exclude=tune)
    assert info.tuned_recall >= 0.97 and info.probe < info.nlist  # reached the target without scanning everything
    found, dist = index.search(x[test], 15, exclude=test)
    exact, exact_dist = ExactIndex(x, metric, 3.0).search(x[test], 15, exclude=test)
    assert recall_at_k(found, exact) >= 0.95
    assert not (found == test[:, None]).any()  # the query itself is excluded
    same = found == exact
    np.testing.assert_allclose(dist[same], exact_dist[same], rtol=1e-12, atol=1e-12)  # ranked exactly: float64 distances


@pytest.mark.parametrize("kind", ["pca-ivf", "hnsw"])
def test_projected_indexes_meet_their_recall(kind):
    x = clustered(3_000, dim=128, clusters=40) @ np.random.default_rng(3).normal(size=(128, 256)).astype(np.float32)
    tune, test = tuning_queries(len(x), size=60)
    index = AnnIndex.build(x, "cosine", kind=kind, nlist=32, pca_dim=128)
    index.tune(x[tune], exact_neighbours(x, x[tune], "cosine", 15, exclude=tune), exclude=tune)
    assert index.measure(x[test], exact_neighbours(x, x[test], "cosine", 15, exclude=test), exclude=test) >= 0.95
    assert index.info.reduced_dim == 128 < index.info.dim


def test_faiss_never_returns_minus_one():
    """nlist 64 over 300 rows: probed cells hold fewer than k+1 vectors; raw FAISS pads with id −1."""
    import faiss

    x = clustered(300)
    raw = faiss.IndexIVFFlat(faiss.IndexFlatL2(48), 48, 64)
    raw.train(x)
    raw.add(x)
    assert (raw.search(x[:20], 16)[1] == -1).any()  # the FAISS behaviour this guards against
    index = AnnIndex.build(x, "euclidean", kind="ivf", nlist=64)
    found, dist = index.search(x[:20], 15, exclude=np.arange(20))
    assert found.shape == (20, 15) and (found >= 0).all() and np.isfinite(dist).all()
    assert not (found == np.arange(20)[:, None]).any()


def test_tuning_uses_held_out_rows_excluded_from_their_own_results(monkeypatch, isolated_cache):
    monkeypatch.setattr("cnnviz.ann.ANN_MIN_ROWS", 1_000)
    monkeypatch.setattr("cnnviz.ann.choose_backend", lambda n, m: ann_backend(n, m))
    calls = []
    real = AnnIndex.search

    def spy(self, queries, k, exclude=None, probe=None):
        calls.append(None if exclude is None else np.asarray(exclude).copy())
        return real(self, queries, k, exclude, probe)

    monkeypatch.setattr(AnnIndex, "search", spy)
    x = clustered(4_000)
    index, backend = get_index(x, "cosine", "features-key-1")
    tune, test = tuning_queries(len(x))
    assert not set(tune) & set(test)
    assert calls and all(c is not None for c in calls)  # every tuning and measuring search excluded its queries
    assert any(np.array_equal(c, tune) for c in calls) and np.array_equal(calls[-1], test)
    assert f"recall@15 {index.info.recall_at_k:.3f}" in backend.note and index.info.recall_at_k >= 0.95


def ann_backend(n, metric):
    from cnnviz.ann import SearchBackend

    return SearchBackend("ivf", "test")


def test_blockwise_exact_neighbours_equal_one_scan(monkeypatch):
    x = clustered(5_000)
    whole = ExactIndex(x, "euclidean").search(x[:20], 10)[0]
    monkeypatch.setattr("cnnviz.search.BLOCK_ELEMENTS", 777)  # many small blocks of rows
    np.testing.assert_array_equal(exact_neighbours(x, x[:20], "euclidean", 10), whole)


def test_backend_choice_by_size_and_metric(monkeypatch, isolated_cache):
    assert choose_backend(1_000, "cosine").kind == "exact"
    assert choose_backend(2_000_000, "cosine").kind == "hnsw"
    assert choose_backend(2_000_000, "chebyshev").kind == "ivf"  # FAISS METRIC_Linf, no exact fallback
    monkeypatch.setattr("cnnviz.ann.ANN_MIN_ROWS", 1_000)
    monkeypatch.setattr("cnnviz.ann.choose_backend", ann_backend)
    x = clustered(4_000)
    index, backend = get_index(x, "cosine", "features-key-1")
    assert isinstance(index, AnnIndex) and "measured recall@15" in backend.note
    assert list((isolated_cache / "ann").glob("*.faiss"))
    monkeypatch.setattr(AnnIndex, "build", classmethod(lambda *a, **k: pytest.fail("rebuilt a cached index")))
    again, _ = get_index(x, "cosine", "features-key-1")
    np.testing.assert_array_equal(again.search(x[:5], 15)[0], index.search(x[:5], 15)[0])


def test_bench_search_cli_json_times_the_product_exact_path(capsys, tmp_path, monkeypatch):
    calls = []
    real = ExactIndex.search
    monkeypatch.setattr(ExactIndex, "search", lambda self, q, k, exclude=None: (calls.append(exclude), real(self, q, k, exclude))[1])
    assert main(["bench-search", "--n", "20000", "--dim", "64", "--index", "ivf", "--workdir", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"n", "dim", "kind", "exact_ms", "index", "ann_ms", "recall_at_15", "build_s", "index_mb", "peak_rss_mb"} <= set(data)
    assert data["n"] == 20_000 and data["dim"] == 64 and data["kind"] == "ivf"
    assert data["recall_at_15"] >= 0.9 and data["ann_ms"] > 0 and data["exact_ms"] > 0 and data["index_mb"] > 0
    timed = [c for c in calls if c is not None and len(c) == 1]  # one dataset image per call, excluded
    assert len(timed) == data["timed_exact_queries"] >= 20
    assert not list(tmp_path.iterdir())  # the memory-mapped vectors are removed afterwards


def test_resumed_precompute_equals_uninterrupted(tiny_folder, tmp_path, monkeypatch):
    from cnnviz import features

    loaded, ds = get_model("efficientnet_lite0"), open_dataset(str(tiny_folder))
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "reference"))
    reference = {k: np.array(v) for k, v in extract_features(loaded, ds, "embedding,1", chunk_size=4).items()}

    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "resumed"))
    real, calls = features.compute_range, []

    def interrupted_after_two_chunks(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(features, "compute_range", interrupted_after_two_chunks)
    with pytest.raises(KeyboardInterrupt):
        extract_features(loaded, ds, "embedding,1", chunk_size=4)
    assert not list((tmp_path / "resumed" / "features").glob("*.npy"))  # nothing final from a half run
    calls.clear()
    monkeypatch.setattr(features, "compute_range", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    resumed = extract_features(loaded, ds, "embedding,1", chunk_size=4)
    assert len(calls) == 1  # only the third chunk (of 3) was computed again
    for layer, ref in reference.items():
        np.testing.assert_array_equal(np.asarray(resumed[layer]), ref)
        assert isinstance(resumed[layer], np.memmap) and not resumed[layer].flags.writeable


def test_corrupt_feature_file_is_discarded_and_recomputed(tiny_folder, isolated_cache, caplog):
    loaded, ds = get_model("efficientnet_lite0"), open_dataset(str(tiny_folder))
    first = np.array(extract_features(loaded, ds, "embedding")["avg_pool"])
    (npy,) = (isolated_cache / "features").glob("*.npy")
    npy.write_bytes(npy.read_bytes()[:-100])  # truncated
    again = extract_features(loaded, ds, "embedding")["avg_pool"]
    np.testing.assert_array_equal(np.asarray(again), first)
    assert "discarding corrupt cache entry" in caplog.text


def test_ray_engine_writes_what_the_local_engine_writes(tiny_folder, tmp_path, monkeypatch):
    loaded, ds = get_model("efficientnet_lite0"), open_dataset(str(tiny_folder))
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "local"))
    local = extract_features(loaded, ds, "embedding,2", chunk_size=4)
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "ray"))
    try:
        distributed = extract_features(loaded, ds, "embedding,2", chunk_size=4, engine="ray")
    finally:
        ray.shutdown()
    for layer in local:
        assert distributed[layer].shape == local[layer].shape
        np.testing.assert_allclose(np.asarray(distributed[layer]), np.asarray(local[layer]), rtol=1e-5, atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "ray" / "features").iterdir()) == sorted(
        p.name for p in (tmp_path / "local" / "features").iterdir())  # same keys, same cache layout
    assert cache.load_matrix("features", next((tmp_path / "ray" / "features").glob("*.npy")).stem) is not None


def test_projection_fits_on_a_sample_and_maps_every_row():
    x = clustered(3_000, dim=16) * np.r_[6.0, 3.0, np.ones(14)].astype(np.float32)  # two clear main axes
    sampled = pca_2d(x, fit_max=500)
    assert sampled.shape == (3_000, 2) and np.isfinite(sampled).all()
    full = pca_2d(x, fit_max=10_000)
    for axis in (0, 1):  # a sample finds the same main axes
        assert abs(np.corrcoef(sampled[:, axis], full[:, axis])[0, 1]) > 0.98
    umap_points = project(x[:1200], ProjectionConfig(method="umap", fit_max=300, n_neighbors=10))
    assert umap_points.shape == (1200, 2) and np.isfinite(umap_points).all()


def test_points_to_draw_caps_and_keeps_the_query():
    assert len(points_to_draw(100, [5], cap=500)) == 100
    drawn = points_to_draw(100_000, [99_999, 3], cap=1000)
    assert 1000 <= len(drawn) <= 1002 and {99_999, 3} <= set(drawn.tolist())


def test_rows_outside_the_fitted_sample_are_placed_by_their_nearest_fitted_rows():
    from cnnviz.projection import place_by_neighbours

    rng = np.random.default_rng(0)
    centres = np.array([[10.0] * 8, [-10.0] * 8], np.float32)
    x = np.concatenate([c + rng.normal(size=(100, 8)).astype(np.float32) for c in centres])
    fit_rows = np.r_[0:50, 100:150]
    fitted = np.where(np.arange(100)[:, None] < 50, [5.0, 5.0], [-5.0, -5.0]).astype(np.float32)  # cluster A, B
    fitted += rng.normal(scale=0.1, size=fitted.shape).astype(np.float32)
    out = place_by_neighbours(x, fit_rows, fitted, "euclidean", k=10)
    np.testing.assert_array_equal(out[fit_rows], fitted)  # the fitted rows keep their place
    assert np.allclose(out[50:100], [5.0, 5.0], atol=0.5) and np.allclose(out[150:200], [-5.0, -5.0], atol=0.5)
