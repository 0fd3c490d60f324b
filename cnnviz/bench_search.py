"""``bench-search``: exact versus FAISS search speed and recall at a given scale, measured in one run.

The vectors are synthetic but shaped like pooled CNN features: ``clusters``
classes in a 64-d latent space (with the default ``spread`` 1.0 a class is as
wide as the typical distance between class centres, so neighbourhoods cross
class and cell boundaries; 0.8 is far easier, 1.2 harder), mapped linearly to ``dim``
dimensions, rectified (features after ReLU are non-negative) and L2-normalised.
Uniform random vectors would be the wrong test: in high dimensions all their
distances are nearly equal and no index — nor a user — can tell neighbours apart.
They are written chunk by chunk to a memory-mapped file, as a large
collection's features are, so N × D may exceed what one array in RAM would hold.

Queries are extra vectors from the same distribution, not in the index:
100 tune ``nprobe``, 100 others measure the reported recall@15.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from .ann import TARGET_RECALL, TUNE_MARGIN, FaissIndex, exact_neighbours, recall_at_k

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


def _exact_query_ms(features: np.ndarray, query: np.ndarray, k: int, block: int = 131_072) -> float:
    """One cosine query over unit rows (a matrix–vector product per block, then top-k), in ms."""
    t = time.perf_counter()
    scores = np.concatenate([features[s : s + block] @ query for s in range(0, len(features), block)])
    np.argpartition(-scores, k)[:k]
    return 1000 * (time.perf_counter() - t)


def bench_search(n: int, dim: int, k: int = 15, nlist: int | None = None, n_queries: int = 100, seed: int = 0,
                 workdir: str | None = None, clusters: int = 1000, spread: float = 1.0) -> dict:
    """Build a FAISS IVF index over n synthetic dim-d features; time exact vs ANN queries; measure recall@k."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        data = synthetic_features(n + 2 * n_queries, dim, Path(tmp) / "features.npy", seed, clusters, spread=spread)
        base = data[:n]
        tune_q, test_q = np.array(data[n : n + n_queries]), np.array(data[n + n_queries :])
        index = FaissIndex.build(base, "cosine", nlist=nlist, seed=seed)
        build_s = index.info.build_s
        truth_tune = exact_neighbours(base, tune_q, "cosine", k)
        truth_test = exact_neighbours(base, test_q, "cosine", k)
        info = index.tune(tune_q, truth_tune, TARGET_RECALL + TUNE_MARGIN)
        found, _ = index.search(test_q, k)
        ann_ms = []
        for q in test_q:
            t = time.perf_counter()
            index.search(q[None], k)
            ann_ms.append(1000 * (time.perf_counter() - t))
        exact_ms = [_exact_query_ms(base, q, k) for q in test_q[:5]]
        del data, base
    return {
        "n": n, "dim": dim, "exact_ms": round(statistics.median(exact_ms), 2),
        "index": f"faiss IVF-Flat (nlist {info.nlist}, nprobe {info.nprobe})",
        "ann_ms": round(statistics.median(ann_ms), 3), "recall_at_15": round(recall_at_k(found, truth_test), 4),
        "build_s": round(build_s, 1), "memory_mb": round((n * dim * 4 + n * 8 + info.nlist * dim * 4) / 2**20, 1),
        "tuned_recall": round(info.recall_at_k, 4), "queries": len(test_q),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "data": f"synthetic: {clusters} clusters, spread {spread} (see cnnviz/bench_search.py)",
    }
