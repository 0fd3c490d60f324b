"""``bench-search``: exact versus FAISS search speed, recall, build time and memory at a given scale, in one run.

The vectors are synthetic but shaped like pooled CNN features: ``clusters``
classes in a 64-d latent space (with the default ``spread`` 1.0 a class is as
wide as the typical distance between class centres, so neighbourhoods cross
class and cell boundaries; 0.8 is far easier, 1.2 harder), mapped linearly to ``dim``
dimensions, rectified (features after ReLU are non-negative) and L2-normalised.
Uniform random vectors would be the wrong test: in high dimensions all their
distances are nearly equal and no index — nor a user — can tell neighbours apart.
They are written chunk by chunk to a memory-mapped file, as a large
collection's features are, so N × D may exceed what one array in RAM would hold.

Recall is measured on vectors from the same distribution that are *not* in the
index: ``n_queries`` tune the index's breadth, ``n_queries`` others measure the
reported recall@15. Speed is measured the way the product searches: a dataset
image as the query, excluded from its own results, one query per call —
:meth:`ExactIndex.search` (the exact path the dashboard runs) against
:meth:`AnnIndex.search` (FAISS candidates ranked exactly).
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from .ann import TARGET_RECALL, TUNE_MARGIN, AnnIndex, exact_neighbours
from .search import ExactIndex

CHUNK = 65_536


def synthetic_features(n: int, dim: int, path: Path, seed: int = 0, clusters: int = 1000, latent: int = 64,
                       spread: float = 1.0) -> np.memmap:
    """(n, dim) float32 unit rows in a .npy file (memory-mapped), written chunk by chunk."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, latent)).astype(np.float32)
    proj = (rng.normal(size=(latent, dim)) / np.sqrt(latent)).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        z = centers[rng.integers(0, clusters, m)] + spread * rng.normal(size=(m, latent)).astype(np.float32)
        x = np.maximum(z @ proj, 0.0) + 0.02 * np.abs(rng.normal(size=(m, dim))).astype(np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    out.flush()
    return out


def _per_query_ms(search, base: np.ndarray, rows: np.ndarray, k: int) -> list[float]:
    """Milliseconds per call of ``search(query, k, exclude=[row])`` for dataset rows as queries."""
    out = []
    for r in rows:
        q = np.array(base[r : r + 1])
        t = time.perf_counter()
        search(q, k, exclude=np.array([r]))
        out.append(1000 * (time.perf_counter() - t))
    return out


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_search(n: int, dim: int, k: int = 15, nlist: int | None = None, n_queries: int = 100, seed: int = 0,
                 workdir: str | None = None, clusters: int = 1000, spread: float = 1.0, kind: str = "auto",
                 metric: str = "cosine", exact_queries: int = 20) -> dict:
    """Build a FAISS index over n synthetic dim-d features; time exact vs ANN queries; measure recall@k."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        data = synthetic_features(n + 2 * n_queries, dim, Path(tmp) / "features.npy", seed, clusters, spread=spread)
        base = data[:n]
        tune_q, test_q = np.array(data[n : n + n_queries]), np.array(data[n + n_queries :])
        rss_before = _peak_rss_mb()
        index = AnnIndex.build(base, metric, kind=kind, nlist=nlist, seed=seed)
        rss_build = _peak_rss_mb()
        index.save(Path(tmp) / "index.faiss")
        index_mb = (Path(tmp) / "index.faiss").stat().st_size / 2**20
        truth_tune = exact_neighbours(base, tune_q, metric, k)
        truth_test = exact_neighbours(base, test_q, metric, k)
        info = index.tune(tune_q, truth_tune, TARGET_RECALL + TUNE_MARGIN)
        recall = index.measure(test_q, truth_test)
        rows = np.random.default_rng(seed + 1).choice(n, size=min(n, n_queries), replace=False)
        ann_ms = _per_query_ms(index.search, base, rows, k)
        t = time.perf_counter()
        exact = ExactIndex(base, metric)  # norms once per setting, as the dashboard caches it
        exact_setup_s = time.perf_counter() - t
        exact_ms = _per_query_ms(exact.search, base, rows[:exact_queries], k)
        del data, base, index, exact
    return {
        "n": n, "dim": dim, "metric": metric, "kind": info.kind, "index": info.describe(),
        "nlist": info.nlist, "probe": info.probe, "exact_ms": round(statistics.median(exact_ms), 2),
        "exact_setup_s": round(exact_setup_s, 1), "ann_ms": round(statistics.median(ann_ms), 3),
        "ann_ms_p95": round(float(np.percentile(ann_ms, 95)), 3),
        "recall_at_15": round(recall, 4), "tuned_recall": round(info.tuned_recall, 4),
        "build_s": round(info.build_s, 1), "index_mb": round(index_mb, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1), "build_rss_growth_mb": round(rss_build - rss_before, 1),
        "queries": len(test_q), "timed_queries": len(ann_ms), "timed_exact_queries": len(exact_ms),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "data": f"synthetic: {clusters} clusters, spread {spread} (see cnnviz/bench_search.py)",
    }
