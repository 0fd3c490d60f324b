"""Distance metrics and exact top-k search in numpy, with float64 ``cdist`` rankings at bounded memory.

Metrics: cosine, euclidean, sqeuclidean, minkowski (any p ≥ 1; p = 2 ranks
exactly like euclidean, p = 1 like manhattan), manhattan, chebyshev and
inner_product. Distances are ``scipy.spatial.distance.cdist``'s, in float64
(for inner product the distance is −x·y in float64; for cosine a zero vector
is at distance 1 from everything, where ``cdist`` gives NaN). Similarity
shown to users is a monotone decreasing function of the distance:

* cosine: the cosine similarity, 1 − distance, in [−1, 1];
* inner_product: the inner product x·y itself;
* every other metric: 1 / (1 + distance), in (0, 1].

How exact search stays fast: cosine, (squared) euclidean and inner product
first score every row with one float32 matrix product, together with a
rigorous bound on that product's rounding error (|fl(q·x) − q·x| ≤ γ·|q|·|x|,
γ = n·u / (1 − n·u), for any summation order). Every row whose lower bound is
not above the k-th smallest upper bound is a candidate — the true top k
always is — and the candidates are ranked by ``cdist`` in float64. Manhattan,
Chebyshev and Minkowski go through ``cdist`` directly. Rows are scanned in
blocks of about :data:`BLOCK_ELEMENTS` distances, so memory stays bounded
at any N (a memory-mapped matrix is read, never copied).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from .errors import UnknownNameError

METRICS = ("cosine", "euclidean", "sqeuclidean", "minkowski", "manhattan", "chebyshev", "inner_product")
DEFAULT_METRIC = "cosine"
BLAS_METRICS = ("cosine", "euclidean", "sqeuclidean", "inner_product")  # float32 product, then exact re-rank
BLOCK_ELEMENTS = 1 << 22  # distances per (queries × rows) block: 32 MB in float64
_U32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32
_SCIPY = {"manhattan": "cityblock"}


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


def exact_distances(queries: np.ndarray, rows: np.ndarray, metric: str, p: float = 2.0) -> np.ndarray:
    """(Q, M) float64 distances, computed as ``cdist`` does (see the module docstring for cosine and inner product)."""
    q = np.atleast_2d(np.asarray(queries, np.float64))
    x = np.atleast_2d(np.asarray(rows, np.float64))
    if metric == "inner_product":
        return -(q @ x.T)
    if metric == "cosine":
        with np.errstate(invalid="ignore", divide="ignore"):
            d = cdist(q, x, "cosine")
        return np.where(np.isnan(d), 1.0, d)  # a zero vector: cosine similarity 0
    kw = {"p": p} if metric == "minkowski" else {}
    return cdist(q, x, _SCIPY.get(metric, metric), **kw)


def _row_norms(x: np.ndarray, block: int = 65_536) -> np.ndarray:
    """Float64 L2 norms of float32 rows, block by block (works on a memory-mapped matrix)."""
    out = np.empty(len(x))
    for s in range(0, len(x), block):
        part = np.asarray(x[s : s + block], np.float64)
        out[s : s + block] = np.sqrt(np.einsum("ij,ij->i", part, part))
    return out


class ExactIndex:
    """Exact search over a (N, D) float32 matrix (in RAM or memory-mapped), ranked like float64 ``cdist``."""

    def __init__(self, features: np.ndarray, metric: str = DEFAULT_METRIC, p: float | None = None):
        self.p = check_metric(metric, p)
        self.metric = metric
        self.base = features if (features.dtype == np.float32 and features.flags.c_contiguous) \
            else np.ascontiguousarray(features, dtype=np.float32)
        dim = self.base.shape[1] if self.base.ndim == 2 else 0
        n_terms = dim + 4  # the product's terms, the query's rounding to float32 and the result's
        self._gamma = 2.0 * n_terms * _U32 / (1.0 - n_terms * _U32)  # doubled: margin over the textbook bound
        self._norms = _row_norms(self.base) if metric in BLAS_METRICS else None

    def __len__(self) -> int:
        return len(self.base)

    def distances(self, queries: np.ndarray) -> np.ndarray:
        """(Q, N) exact float64 distances from each query row to every indexed row (Q × N memory: small sets only)."""
        q = np.atleast_2d(np.asarray(queries, np.float64))
        step = max(1, BLOCK_ELEMENTS // max(len(q), self.base.shape[1]))
        return np.concatenate([exact_distances(q, self.base[s : s + step], self.metric, self.p)
                               for s in range(0, len(self.base), step)], axis=1)

    def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Indices and float64 distances of the k nearest rows per query, best first.

        ``exclude[i]`` (optional; a scalar applies to every query) is an index to leave out for
        query i (the query itself). Ties are broken by index, so results are deterministic.
        """
        q = np.atleast_2d(np.asarray(queries, np.float64))
        ex = None if exclude is None else np.broadcast_to(np.asarray(exclude, np.int64), (len(q),))
        k = max(0, min(k, len(self.base) - (0 if ex is None else 1)))
        if k == 0 or len(q) == 0:
            return np.zeros((len(q), 0), np.int64), np.zeros((len(q), 0))
        qb = max(1, min(len(q), 256))
        parts = [self._search_block(q[s : s + qb], k, None if ex is None else ex[s : s + qb])
                 for s in range(0, len(q), qb)]
        return np.concatenate([i for i, _ in parts]), np.concatenate([d for _, d in parts])

    def _search_block(self, q: np.ndarray, k: int, ex: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if self.metric in BLAS_METRICS or self.metric == "minkowski":
            return self._bounded_search(q, k, ex)
        # manhattan, chebyshev: cdist directly, a few thousand rows at a time; keep the running k best
        rows = max(1, BLOCK_ELEMENTS // max(len(q), self.base.shape[1]))
        best_i, best_d = np.zeros((len(q), 0), np.int64), np.zeros((len(q), 0))
        for s in range(0, len(self.base), rows):
            d = exact_distances(q, self.base[s : s + rows], self.metric, self.p)
            _exclude(d, ex, s)
            i, d = top_k_smallest(d, min(k, d.shape[1]))
            best_i, best_d = _merge(np.concatenate([best_i, i + s], 1), np.concatenate([best_d, d], 1), k)
        return best_i, best_d

    def _bounded_search(self, q: np.ndarray, k: int, ex: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Float32 scores with error bounds select candidates that surely hold the top k; cdist ranks them.

        Per block of rows, each query's approximate values lie within ± its error bound ``e`` of the true
        ones (squared distance for euclidean, p-th power for Minkowski). The k-th smallest upper bound so
        far caps the true k-th value, so every row whose lower bound is not above it is kept.
        """
        q_norm = np.sqrt(np.einsum("ij,ij->i", q, q))
        dim = self.base.shape[1]
        rows = max(1, BLOCK_ELEMENTS // (dim if self.metric == "minkowski" else len(q)))
        kth_hi = np.full((len(q), 0), np.inf)  # the k smallest upper bounds seen so far, per query
        found: list[list[np.ndarray]] = [[] for _ in q]
        for s in range(0, len(self.base), rows):
            x = self.base[s : s + rows]
            # d: approximate values; the truth lies in [d − e, d + e] (e per query, or per value for Minkowski)
            if self.metric == "minkowski":
                d, e = self._power_bounds(q.astype(np.float32), x)
            else:
                d, e = self._approx(q, q_norm, x, self._norms[s : s + len(x)])
                e = e[:, None]
            unsure = ~np.isfinite(d)  # float32 overflow: always a candidate, the exact pass decides
            if unsure.any():
                r, c = np.nonzero(unsure)
                for qi, cols in zip(*_group(r, c)):
                    found[qi].append(cols + s)
                d[unsure] = np.inf
            if ex is not None:
                inside = (ex >= s) & (ex < s + len(x))
                d[inside, ex[inside] - s] = np.inf
            m = min(k, d.shape[1])
            if np.ndim(e) == 2 and e.shape[1] > 1:  # per-value bounds
                top = np.partition(d + e, m - 1, axis=1)[:, :m]
            else:
                top = np.partition(d, m - 1, axis=1)[:, :m] + e
            kth_hi = np.concatenate([kth_hi, top], axis=1)
            kth_hi = np.partition(kth_hi, min(k, kth_hi.shape[1]) - 1, axis=1)[:, :k]
            limit = kth_hi.max(axis=1) if kth_hi.shape[1] >= k else np.full(len(q), np.inf)
            keep = (d - e <= limit[:, None]) if np.ndim(e) == 2 and e.shape[1] > 1 else \
                (d <= np.nextafter((limit[:, None] + e).astype(d.dtype), np.inf))
            r, c = np.nonzero(keep & np.isfinite(d))
            for qi, cols in zip(*_group(r, c)):
                found[qi].append(cols + s)
        out_i, out_d = np.empty((len(q), k), np.int64), np.empty((len(q), k))
        for qi, parts in enumerate(found):
            cand = np.concatenate(parts)
            if ex is not None:
                cand = cand[cand != ex[qi]]
            d = exact_distances(q[qi], self.base[cand], self.metric, self.p)[0]
            order = np.lexsort((cand, d))[:k]
            out_i[qi], out_d[qi] = cand[order], d[order]
        return out_i, out_d

    def _approx(self, q: np.ndarray, q_norm: np.ndarray, x: np.ndarray, x_norm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Float32 distances (squared for euclidean) of a block of rows, and each query's bound on their error.

        The product's error is at most γ·|q|·|x| ≤ γ‖q‖‖x‖; the few float32 operations after it add a
        few roundings of values no larger than (‖q‖ + ‖x‖)², covered by the 10 extra units below.
        """
        u, g = _U32, self._gamma
        x_max = float(x_norm.max()) if len(x_norm) else 0.0
        if self.metric == "cosine":
            with np.errstate(divide="ignore"):
                inv_q = np.where(q_norm > 0, 1.0 / q_norm, 0.0)
                inv_x = np.where(x_norm > 0, 1.0 / x_norm, 0.0).astype(np.float32)
            d = (q * inv_q[:, None]).astype(np.float32) @ x.T  # cosine similarity; zero vectors: 0
            d *= inv_x[None, :]
            np.subtract(np.float32(1.0), d, out=d)
            return d, np.full(len(q), g + 10 * u)
        d = q.astype(np.float32) @ x.T
        if self.metric == "inner_product":
            np.negative(d, out=d)
            return d, (g + 10 * u) * q_norm * x_max
        d *= np.float32(-2.0)
        d += (q_norm**2).astype(np.float32)[:, None]
        d += (x_norm**2).astype(np.float32)[None, :]
        return d, (g + 10 * u) * (q_norm + x_max) ** 2

    def _power_bounds(self, q32: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of Σ|q − x|^p (Minkowski's distance to the p-th power) from float32 sums of non-negative terms."""
        dim, p = x.shape[1], self.p
        rel = 2.0 * (dim + 2 * p + 8) * _U32  # differences, powers and the sum, all relative (terms are ≥ 0)
        tiny = dim * 1e-44  # float32 underflow of tiny powers
        s = np.empty((len(q32), len(x)))
        for i, row in enumerate(q32):  # one query at a time keeps memory at rows × D
            s[i] = _power(np.abs(x - row), p).sum(axis=1)
        return s, s * rel + tiny



def _power(x: np.ndarray, p: float) -> np.ndarray:
    """x ** p; small integer p by repeated multiplication (~10× faster than np.power)."""
    if float(p).is_integer() and 1 <= p <= 8:
        out = x.copy()
        for _ in range(int(p) - 1):
            out *= x
        return out
    return np.power(x, p)


def _group(r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Column indices grouped by row index (``np.nonzero`` output is sorted by row)."""
    if len(r) == 0:
        return np.zeros(0, np.int64), []
    starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    return r[starts], np.split(c, starts[1:])


def _exclude(d: np.ndarray, ex: np.ndarray | None, start: int) -> None:
    if ex is not None:
        inside = (ex >= start) & (ex < start + d.shape[1])
        d[inside, ex[inside] - start] = np.inf


def _merge(idx: np.ndarray, dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k best (distance, then index) of already-sorted candidate lists."""
    order = np.lexsort((idx, dist), axis=1)[:, :k]
    return np.take_along_axis(idx, order, 1), np.take_along_axis(dist, order, 1)


def top_k_smallest(d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k smallest entries (stable by column index)."""
    n = d.shape[1]
    if k <= 0:
        return np.zeros((len(d), 0), np.int64), np.zeros((len(d), 0))
    if k < n:
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        # argpartition may cut through a tie; include every column equal to the k-th value
        kth = np.take_along_axis(d, part, axis=1).max(axis=1, keepdims=True)
        idx = [np.flatnonzero(row <= t) for row, t in zip(d, kth)]
    else:
        idx = [np.arange(n)] * len(d)
    order = [ix[np.lexsort((ix, row[ix]))][:k] for ix, row in zip(idx, d)]
    indices = np.array(order, dtype=np.int64)
    return indices, np.take_along_axis(d, indices, axis=1)


def similarity(distances: np.ndarray, metric: str) -> np.ndarray:
    """The similarity shown to users for these distances (see module docstring)."""
    d = np.asarray(distances, np.float64)
    if metric == "cosine":
        return 1.0 - d
    if metric == "inner_product":
        return -d
    return 1.0 / (1.0 + d)
