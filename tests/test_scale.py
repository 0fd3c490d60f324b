"""Scale: ANN index vs exact search, resumable chunked precompute, the Ray engine, sampled projections."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnviz import ann, cache
from cnnviz.ann import (
    FaissIndex,
    choose_backend,
    exact_neighbours,
    get_index,
    recall_at_k,
)
from cnnviz.cli import main
from cnnviz.data import open_dataset
from cnnviz.features import extract_features
from cnnviz.projection import ProjectionConfig, pca_2d, points_to_draw, project
from cnnviz.search import ExactIndex
from cnnviz.workflows import get_model


def clustered(n: int, dim: int = 48, clusters: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim))
    return (centers[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, dim))).astype(np.float32)


@pytest.mark.parametrize("metric", ann.FAISS_METRICS)
def test_faiss_index_matches_exact_search_at_high_recall(metric):
    x = clustered(20_000)
    queries = x[:100]
    index = FaissIndex.build(x, metric, nlist=64)
    info = index.tune(queries, exact_neighbours(x, queries, metric, 15, block=7_000))
    assert info.recall_at_k >= 0.95 and info.nprobe < info.nlist  # reached the target without scanning everything
    found, dist = index.search(queries, 15, exclude=np.arange(100))
    exact, exact_dist = ExactIndex(x, metric).search(queries, 15, exclude=np.arange(100))
    assert recall_at_k(found, exact) >= 0.95
    assert not (found == np.arange(100)[:, None]).any()  # the query itself is excluded
    same = found[:, 0] == exact[:, 0]
    np.testing.assert_allclose(dist[same, 0], exact_dist[same, 0], rtol=1e-4, atol=1e-4)  # same distance units


def test_blockwise_exact_neighbours_equal_one_scan():
    x = clustered(5_000)
    blocks = exact_neighbours(x, x[:20], "euclidean", 10, block=777)
    whole, _ = ExactIndex(x, "euclidean").search(x[:20], 10)
    np.testing.assert_array_equal(blocks, whole)


def test_backend_choice_by_size_and_metric(monkeypatch, isolated_cache):
    assert choose_backend(1_000, "cosine").kind == "exact"
    assert choose_backend(2_000_000, "cosine").kind == "faiss-ivf"
    fallback = choose_backend(2_000_000, "chebyshev")
    assert fallback.kind == "exact" and "no FAISS index" in fallback.note
    monkeypatch.setattr(ann, "ANN_MIN_ROWS", 1_000)
    x = clustered(4_000)
    index, backend = get_index(x, "cosine", "features-key-1")
    assert isinstance(index, FaissIndex) and "measured recall@15" in backend.note
    assert list((isolated_cache / "ann").glob("*.faiss"))
    monkeypatch.setattr(FaissIndex, "build", classmethod(lambda *a, **k: pytest.fail("rebuilt a cached index")))
    again, _ = get_index(x, "cosine", "features-key-1")
    np.testing.assert_array_equal(again.search(x[:5], 15)[0], index.search(x[:5], 15)[0])


def test_bench_search_cli_json(capsys, tmp_path):
    assert main(["bench-search", "--n", "20000", "--dim", "64", "--workdir", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"n", "dim", "exact_ms", "index", "ann_ms", "recall_at_15", "build_s", "memory_mb"} <= set(data)
    assert data["n"] == 20_000 and data["dim"] == 64
    assert data["recall_at_15"] >= 0.9 and data["ann_ms"] > 0 and data["exact_ms"] > 0
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
    ray = pytest.importorskip("ray")
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
