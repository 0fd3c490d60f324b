"""Approximate nearest-neighbour search with FAISS, for collections too large to scan.

Below :data:`ANN_MIN_ROWS` rows cnnviz scans exactly (see :mod:`cnnviz.search`).
Above it a FAISS index proposes candidates and cnnviz ranks them exactly
(float64 ``cdist`` on the memory-mapped full vectors), so every distance shown
is exact and only the candidate set is approximate. Index kinds:

* ``ivf``: IVF-Flat on the full vectors (k-means cells, ``nlist`` ≈ √N; each
  query scans ``nprobe`` cells). Every metric: cosine (unit rows, L2),
  (squared) euclidean (L2), inner product, manhattan (``METRIC_L1``),
  chebyshev (``METRIC_Linf``) and minkowski (``METRIC_Lp`` with p).
* ``pca-ivf``: the same over the vectors projected by PCA to
  :data:`PCA_DIM` dimensions (FAISS ``PCAMatrix`` fitted on a sample): a
  query scans 10× fewer bytes, and the exact re-ranking of
  :data:`RERANK` × k candidates repairs the projection's error. Only for
  cosine and (squared) euclidean: an orthogonal projection of centred data
  approximates L2 distances, not inner products or L1 / L∞ / Lp.
* ``hnsw``: a FAISS HNSW graph over the PCA-projected vectors (same metrics
  as ``pca-ivf``), ``efSearch`` tuned; slower to build.

``auto`` is ``hnsw`` where the metric allows it, else ``ivf``: on this 2-core VM
at 1M × 1280 HNSW answered in 11 ms (p95 28 ms) at recall@15 0.982 on the hard
10,000-class set, where ``pca-ivf`` needed 384 of 1024 cells and 92–123 ms
(docs/scale.md); its build (11–13 min at 1M) is paid once and cached. The search
breadth (``nprobe`` or ``efSearch``) is not guessed: :meth:`AnnIndex.tune`
takes the smallest that reaches recall@15 ≥ 0.97 on tuning queries, and the
recall the UI shows is measured afterwards on *other* queries. Queries that
are dataset images are searched as the product searches them: the query is
excluded from its own results, in the truth and in the index's answer.

FAISS answers id −1 when the probed cells hold fewer vectors than asked
for; such queries are searched again with twice the breadth, and a query
still short (only possible on tiny sets) is answered by exact search.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import cache
from .progress import Progress
from .search import ExactIndex, check_metric, exact_distances

ANN_MIN_ROWS = 100_000
TARGET_RECALL = 0.95
TUNE_MARGIN = 0.02  # tune to 0.97 on the tuning queries so unseen queries still reach 0.95
INDEX_KINDS = ("auto", "ivf", "pca-ivf", "hnsw")
PCA_METRICS = ("cosine", "euclidean", "sqeuclidean")
PCA_DIM = 128
RERANK = 8  # candidates ranked exactly per query: RERANK × k
HNSW_M = 32
ADD_CHUNK = 65_536  # rows normalised and added at a time (bounded memory over a memory-mapped matrix)
INDEX_VERSION = 2  # part of the cache key: bump when the index layout or tuning changes


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is in requirements.txt
        raise ImportError("ANN search needs faiss-cpu: pip install faiss-cpu") from exc
    return faiss


def _rows(x: np.ndarray, metric: str) -> np.ndarray:
    """A float32 contiguous copy of rows as FAISS wants them (unit length for cosine)."""
    out = np.array(x, dtype=np.float32, order="C", copy=True)
    if metric == "cosine":
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def default_nlist(n: int) -> int:
    """A power of two near √N (at least 16), so every cell holds a few hundred to thousand vectors."""
    return int(max(16, 2 ** round(np.log2(max(np.sqrt(n), 1)))))


def resolve_kind(kind: str, metric: str) -> str:
    """``auto`` → ``hnsw`` (over PCA) where PCA keeps the metric's ranking approximately, else ``ivf``."""
    if kind not in INDEX_KINDS:
        raise ValueError(f"unknown index kind {kind!r}; choose one of: {', '.join(INDEX_KINDS)}")
    if kind == "auto":
        return "hnsw" if metric in PCA_METRICS else "ivf"
    if kind != "ivf" and metric not in PCA_METRICS:
        raise ValueError(f"{kind} projects with PCA, which does not keep {metric} rankings; use ivf")
    return kind


def _faiss_metric(metric: str):
    """(FAISS metric type, metric_arg). Cosine is L2 over unit rows (same order as cosine distance)."""
    faiss = _faiss()
    return {"cosine": (faiss.METRIC_L2, 0.0), "euclidean": (faiss.METRIC_L2, 0.0), "sqeuclidean": (faiss.METRIC_L2, 0.0),
            "inner_product": (faiss.METRIC_INNER_PRODUCT, 0.0), "manhattan": (faiss.METRIC_L1, 0.0),
            "chebyshev": (faiss.METRIC_Linf, 0.0), "minkowski": (faiss.METRIC_Lp, None)}[metric]


@dataclass
class IndexInfo:
    kind: str  # "ivf" | "pca-ivf" | "hnsw"
    metric: str
    p: float
    n: int
    dim: int
    reduced_dim: int  # dimensions the index searches (dim without PCA)
    nlist: int  # IVF cells (0 for HNSW)
    probe: int  # nprobe (IVF) or efSearch (HNSW)
    rerank: int  # candidates ranked exactly per query
    k: int
    build_s: float
    tuned_recall: float | None = None  # on the tuning queries
    recall_at_k: float | None = None  # on other queries, measured after tuning

    @property
    def breadth(self) -> str:
        return f"efSearch {self.probe}" if self.kind == "hnsw" else f"nlist {self.nlist}, nprobe {self.probe}"

    def describe(self) -> str:
        pca = f" over PCA-{self.reduced_dim}" if self.reduced_dim < self.dim else ""
        return f"FAISS {self.kind.upper().replace('PCA-', '')}{pca} ({self.breadth}), {self.rerank} candidates ranked exactly"


class AnnIndex:
    """A FAISS index proposing candidates, ranked exactly; the same ``search`` contract as :class:`ExactIndex`."""

    def __init__(self, index, info: IndexInfo, features: np.ndarray):
        self.index, self.info, self.features = index, info, features
        self.metric = info.metric

    def __len__(self) -> int:
        return self.info.n

    @classmethod
    def build(cls, features: np.ndarray, metric: str = "cosine", p: float | None = None, kind: str = "auto",
              nlist: int | None = None, pca_dim: int = PCA_DIM, train_size: int = 50_000, seed: int = 0,
              progress: Progress | None = None) -> AnnIndex:
        """Train on a seeded sample, then add every row in chunks (works on a memory-mapped matrix)."""
        faiss = _faiss()
        p = check_metric(metric, p)
        kind = resolve_kind(kind, metric)
        started = time.perf_counter()
        n, dim = features.shape
        ftype, arg = _faiss_metric(metric)
        reduced = min(dim, pca_dim) if kind != "ivf" else dim
        if kind == "hnsw":
            nlist = 0
            inner = faiss.IndexHNSWFlat(reduced, HNSW_M, ftype)
            inner.hnsw.efConstruction = 80
        else:
            nlist = nlist or default_nlist(n)
            # cells are found by L2 (BLAS) even for L1 / L∞ / Lp: FAISS scans those metrics without BLAS,
            # ~1000× slower to assign 1M rows, and the k-means cells are L2 cells anyway
            quantizer = faiss.IndexFlat(reduced, ftype if ftype == faiss.METRIC_INNER_PRODUCT else faiss.METRIC_L2)
            inner = faiss.IndexIVFFlat(quantizer, reduced, nlist, ftype)
            inner.cp.seed = seed
            if metric == "minkowski":
                inner.metric_arg = p
        index = faiss.IndexPreTransform(faiss.PCAMatrix(dim, reduced), inner) if reduced < dim else inner
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, size=min(n, max(train_size, nlist * 40)), replace=False))
        index.train(_rows(features[sample], metric))
        for start in range(0, n, ADD_CHUNK):
            index.add(_rows(features[start : start + ADD_CHUNK], metric))
            if progress:
                progress(min(start + ADD_CHUNK, n), n)
        info = IndexInfo(kind, metric, p, n, dim, reduced, nlist, probe=1 if kind != "hnsw" else 16, rerank=RERANK * 15,
                         k=15, build_s=time.perf_counter() - started)
        return cls(index, info, features)

    def _params(self, probe: int):
        faiss = _faiss()
        inner = faiss.SearchParametersHNSW(efSearch=probe) if self.info.kind == "hnsw" else \
            faiss.SearchParametersIVF(nprobe=min(probe, self.info.nlist))
        return faiss.SearchParametersPreTransform(index_params=inner) if self.info.reduced_dim < self.info.dim else inner

    def _max_probe(self) -> int:
        return self.info.nlist if self.info.kind != "hnsw" else max(self.info.n, 16)

    def candidates(self, queries: np.ndarray, m: int, probe: int | None = None) -> np.ndarray:
        """(Q, ≤ m) candidate ids per query, never −1 (short rows are searched again with twice the breadth)."""
        q = _rows(np.atleast_2d(queries), self.metric)
        probe = probe or self.info.probe
        want = max(m, probe) if self.info.kind == "hnsw" else probe
        _, ids = self.index.search(q, m, params=self._params(want))
        short = np.flatnonzero((ids < 0).any(axis=1))
        while len(short) and want < self._max_probe():
            want = min(2 * want, self._max_probe())
            _, again = self.index.search(q[short], m, params=self._params(max(want, m) if self.info.kind == "hnsw" else want))
            ids[short] = again
            short = short[(again < 0).any(axis=1)]
        return ids

    def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None,
               probe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Indices and exact float64 distances of the (approximately) k nearest rows per query, best first."""
        q = np.atleast_2d(np.asarray(queries))
        ex = None if exclude is None else np.broadcast_to(np.asarray(exclude, np.int64), (len(q),))
        k = max(0, min(k, self.info.n - (0 if ex is None else 1)))
        m = min(self.info.n, max(self.info.rerank, k) + (0 if ex is None else 1))
        ids = self.candidates(q, m, probe)
        out_i, out_d = np.empty((len(q), k), np.int64), np.empty((len(q), k))
        exact = None
        for r, row in enumerate(ids):
            cand = np.unique(row[row >= 0])
            if ex is not None:
                cand = cand[cand != ex[r]]
            if len(cand) < k:  # FAISS found too few even at full breadth: scan exactly
                exact = exact if exact is not None else ExactIndex(self.features, self.metric, self.info.p)
                out_i[r], out_d[r] = (a[0] for a in exact.search(q[r], k, None if ex is None else ex[r : r + 1]))
                continue
            d = exact_distances(q[r], self.features[cand], self.metric, self.info.p)[0]
            order = np.lexsort((cand, d))[:k]
            out_i[r], out_d[r] = cand[order], d[order]
        return out_i, out_d

    def tune(self, queries: np.ndarray, truth: np.ndarray, target: float = TARGET_RECALL + TUNE_MARGIN,
             exclude: np.ndarray | None = None) -> IndexInfo:
        """Smallest breadth (nprobe or efSearch) whose recall@k against ``truth`` reaches ``target``."""
        k = truth.shape[1]
        steps = nprobe_steps(self.info.nlist) if self.info.kind != "hnsw" else [16, 24, 32, 48, 64, 96, 128, 192, 256,
                                                                                 384, 512, 768, 1024, 2048]
        for probe in steps:
            recall = recall_at_k(self.search(queries, k, exclude, probe=probe)[0], truth)
            if recall >= target:
                break
        self.info.probe, self.info.tuned_recall, self.info.k = probe, recall, k
        return self.info

    def measure(self, queries: np.ndarray, truth: np.ndarray, exclude: np.ndarray | None = None) -> float:
        """Recall@k on queries not used for tuning (stored in the info)."""
        self.info.recall_at_k = recall_at_k(self.search(queries, truth.shape[1], exclude)[0], truth)
        return self.info.recall_at_k

    def save(self, path: Path) -> None:
        faiss = _faiss()
        with cache.atomic_path(path) as tmp:
            faiss.write_index(self.index, str(tmp))
        cache.write_json_atomic(path.with_suffix(".json"), {**asdict(self.info), "bytes": path.stat().st_size})

    @classmethod
    def load(cls, path: Path, features: np.ndarray) -> AnnIndex | None:
        """The saved index, or None when it is missing or does not match its sidecar or the features."""
        side = path.with_suffix(".json")
        if not (path.exists() and side.exists()):
            return None
        try:
            meta = json.loads(side.read_text())
            if meta.pop("bytes") != path.stat().st_size:
                raise ValueError("size does not match the sidecar")
            info = IndexInfo(**meta)
            if (info.n, info.dim) != tuple(features.shape):
                raise ValueError("index does not match the features")
            index = cls(_faiss().read_index(str(path)), info, features)
        except (OSError, ValueError, TypeError, KeyError, RuntimeError):  # unreadable: rebuild, never trust
            cache.safe_remove(path)
            cache.safe_remove(side)
            return None
        cache.mark_used(side)  # the quota's least-recently-used clock
        return index


def nprobe_steps(nlist: int) -> list[int]:
    """1, 2, 3, 4, 6, 8, 12, 16, … (powers of two and the halfway 1.5× between), ending at nlist."""
    steps, p = [1], 2
    while p < nlist:
        steps += [p, p + p // 2] if p + p // 2 < nlist else [p]
        p *= 2
    return [*steps, nlist]


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact k nearest neighbours that the approximate search returned."""
    k = exact.shape[1]
    return float(np.mean([len(set(f[:k]) & set(e)) / k for f, e in zip(found, exact)]))


def exact_neighbours(features: np.ndarray, queries: np.ndarray, metric: str, k: int, p: float | None = None,
                     exclude: np.ndarray | None = None) -> np.ndarray:
    """Exact top-k of queries over a (possibly memory-mapped) matrix (bounded memory, see :class:`ExactIndex`)."""
    return ExactIndex(features, metric, p).search(queries, k, exclude)[0]


@dataclass(frozen=True)
class SearchBackend:
    """What a search will use, and why (shown in the UI)."""

    kind: str  # "exact" | "ivf" | "pca-ivf" | "hnsw"
    note: str


def choose_backend(n: int, metric: str) -> SearchBackend:
    check_metric(metric)
    if n < ANN_MIN_ROWS:
        return SearchBackend("exact", f"exact search over {n:,} vectors (numpy, ranked like float64 cdist)")
    kind = resolve_kind("auto", metric)
    return SearchBackend(kind, f"FAISS {kind} index over {n:,} vectors, breadth tuned for recall@15 ≥ {TARGET_RECALL}")


def tuning_queries(n: int, seed: int = 1, size: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint seeded sets of row indices: one to tune the breadth, one to measure recall afterwards."""
    rows = np.random.default_rng(seed).choice(n, size=min(n, 2 * size), replace=False)
    half = len(rows) // 2
    return np.sort(rows[:half]), np.sort(rows[half:])


def get_index(features: np.ndarray, metric: str, features_key: str, p: float | None = None,
              progress: Progress | None = None) -> tuple[ExactIndex | AnnIndex, SearchBackend]:
    """The index a search over these features should use: exact, or a FAISS index built once and cached on disk.

    Tuning and measuring use dataset rows as queries, each excluded from its own results —
    exactly how the product searches a dataset image.
    """
    backend = choose_backend(len(features), metric)
    if backend.kind == "exact":
        return ExactIndex(features, metric, p), backend
    p = check_metric(metric, p)
    key = cache.make_key("ann", features=features_key, metric=metric, p=p, index=backend.kind, pca=PCA_DIM,
                         rerank=RERANK, target=TARGET_RECALL, version=INDEX_VERSION)
    path = cache.entry_dir("ann") / f"{key}.faiss"
    index = AnnIndex.load(path, features)
    if index is None:
        index = AnnIndex.build(features, metric, p, backend.kind, progress=progress)
        tune_rows, test_rows = tuning_queries(len(features))
        for rows, step in ((tune_rows, index.tune), (test_rows, index.measure)):
            q = np.asarray(features[rows])
            step(q, exact_neighbours(features, q, metric, 15, p, exclude=rows), exclude=rows)
        index.save(path)
    info = index.info
    return index, SearchBackend(info.kind, f"{info.describe()} over {info.n:,} vectors; measured recall@{info.k} "
                                f"{info.recall_at_k:.3f} vs exact on {len(tuning_queries(info.n)[1])} other queries")
