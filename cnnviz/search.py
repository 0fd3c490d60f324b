"""Distance metrics and exact top-k search in numpy.

Metrics: cosine, euclidean, sqeuclidean, minkowski (any p ≥ 1; p = 2 ranks
exactly like euclidean, p = 1 like manhattan), manhattan, chebyshev and
inner_product. Distances agree with ``scipy.spatial.distance.cdist`` (for
inner product the distance is −x·y). Similarity shown to users is a
monotone decreasing function of the distance:

* cosine: the cosine similarity, 1 − distance, in [−1, 1];
* inner_product: the inner product x·y itself;
* every other metric: 1 / (1 + distance), in (0, 1].
"""

from __future__ import annotations


import numpy as np

from .errors import UnknownNameError

METRICS = ("cosine", "euclidean", "sqeuclidean", "minkowski", "manhattan", "chebyshev", "inner_product")
DEFAULT_METRIC = "cosine"
_EPS = 1e-12


def check_metric(metric: str, p: float | None = None) -> float:
    """Validate a metric name; returns the Minkowski p to use (ignored by others)."""
    if metric not in METRICS:
        raise UnknownNameError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    if metric == "minkowski":
        p = 3.0 if p is None else float(p)
        if not p >= 1:
            raise UnknownNameError(f"minkowski needs p ≥ 1 (got {p})")
        return p
    return 2.0


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _EPS)


class ExactIndex:
    """Brute-force search over a (N, D) float32 matrix with precomputed norms."""

    def __init__(self, features: np.ndarray, metric: str = DEFAULT_METRIC, p: float | None = None):
        self.p = check_metric(metric, p)
        self.metric = metric
        self.base = np.ascontiguousarray(features, dtype=np.float32)
        if metric == "cosine":
            self._unit = _normalize(self.base)
        elif metric in ("euclidean", "sqeuclidean"):
            self._sq = np.einsum("ij,ij->i", self.base, self.base)

    def __len__(self) -> int:
        return len(self.base)

    def distances(self, queries: np.ndarray) -> np.ndarray:
        """(Q, N) distances from each query row to every indexed row."""
        q = np.atleast_2d(np.asarray(queries, np.float32))
        m = self.metric
        if m == "cosine":
            return 1.0 - _normalize(q) @ self._unit.T
        if m == "inner_product":
            return -(q @ self.base.T)
        if m in ("euclidean", "sqeuclidean"):
            sq = np.einsum("ij,ij->i", q, q)[:, None] - 2.0 * (q @ self.base.T) + self._sq[None, :]
            sq = np.maximum(sq, 0.0)
            return sq if m == "sqeuclidean" else np.sqrt(sq)
        out = np.empty((len(q), len(self.base)), np.float32)
        for i, row in enumerate(q):  # one query at a time keeps memory at N×D
            diff = np.abs(self.base - row)
            if m == "chebyshev":
                out[i] = diff.max(axis=1)
            elif m == "manhattan" or (m == "minkowski" and self.p == 1):
                out[i] = diff.sum(axis=1)
            else:
                out[i] = np.power(_power(diff, self.p).sum(axis=1), 1.0 / self.p)
        return out

    def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Indices and distances of the k nearest rows per query, best first.

        ``exclude[i]`` (optional) is an index to leave out for query i (the query
        itself). Ties are broken by index, so results are deterministic.
        """
        d = self.distances(queries).astype(np.float64)
        if exclude is not None:
            d[np.arange(len(d)), exclude] = np.inf
        k = min(k, len(self.base) - (0 if exclude is None else 1))
        return top_k_smallest(d, k)


def _power(x: np.ndarray, p: float) -> np.ndarray:
    """x ** p; small integer p by repeated multiplication (~10× faster than np.power)."""
    if p.is_integer() and 1 <= p <= 8:
        out = x.copy()
        for _ in range(int(p) - 1):
            out *= x
        return out
    return np.power(x, p)


def top_k_smallest(d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k smallest entries (stable by column index)."""
    n = d.shape[1]
    if k <= 0:
        return np.zeros((len(d), 0), int), np.zeros((len(d), 0))
    if k < n:
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        # argpartition may cut through a tie; include every column equal to the k-th value
        kth = np.take_along_axis(d, part, axis=1).max(axis=1, keepdims=True)
        idx = [np.flatnonzero(row <= t) for row, t in zip(d, kth)]
    else:
        idx = [np.arange(n)] * len(d)
    order = [ix[np.lexsort((ix, row[ix]))][:k] for ix, row in zip(idx, d)]
    indices = np.array(order)
    return indices, np.take_along_axis(d, indices, axis=1)


def similarity(distances: np.ndarray, metric: str) -> np.ndarray:
    """The similarity shown to users for these distances (see module docstring)."""
    d = np.asarray(distances, np.float64)
    if metric == "cosine":
        return 1.0 - d
    if metric == "inner_product":
        return -d
    return 1.0 / (1.0 + d)
