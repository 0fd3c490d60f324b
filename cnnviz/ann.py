"""Approximate nearest-neighbour search with FAISS, for collections too large to scan.

Below :data:`ANN_MIN_ROWS` rows cnnviz scans exactly (numpy, see
:mod:`cnnviz.search`): at 100k × 1280 an exact query is still a few tens of
ms. Above it, cosine / inner-product / (squared) euclidean searches use a FAISS
IVF-Flat index: k-means cells (``nlist`` ≈ √N), and each query scans the
``nprobe`` nearest cells. ``nprobe`` is not guessed: :meth:`FaissIndex.tune`
measures recall@15 against exact search on held-out queries and keeps the
smallest ``nprobe`` that reaches the target (0.95). Other metrics (manhattan,
chebyshev, minkowski) have no FAISS index here and fall back to exact search.

IVF rather than HNSW: on this 2-core machine an HNSW graph over 1M × 1280
would take far longer to build than k-means over a 50k sample plus one
assignment pass, and IVF-Flat scans exactly the vectors it keeps (no
quantisation error), so recall depends on ``nprobe`` alone.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import cache
from .progress import Progress
from .search import ExactIndex, check_metric

ANN_MIN_ROWS = 100_000
TARGET_RECALL = 0.95
TUNE_MARGIN = 0.02  # tune to 0.97 on the tuning queries so unseen queries still reach 0.95
FAISS_METRICS = ("cosine", "inner_product", "euclidean", "sqeuclidean")
ADD_CHUNK = 65_536  # rows normalised and added at a time (bounded memory over a memory-mapped matrix)


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


@dataclass
class IndexInfo:
    metric: str
    n: int
    dim: int
    nlist: int
    nprobe: int
    recall_at_k: float | None  # measured by tune(); None until tuned
    k: int
    build_s: float


class FaissIndex:
    """An IVF-Flat FAISS index with the same ``search`` contract as :class:`~cnnviz.search.ExactIndex`."""

    def __init__(self, index, info: IndexInfo):
        self.index, self.info = index, info
        self.metric = info.metric
        self.index.nprobe = info.nprobe

    def __len__(self) -> int:
        return self.info.n

    @classmethod
    def build(cls, features: np.ndarray, metric: str = "cosine", nlist: int | None = None, train_size: int = 50_000,
              seed: int = 0, progress: Progress | None = None) -> FaissIndex:
        """Train k-means cells on a sample, then add every row in chunks (works on a memory-mapped matrix)."""
        if metric not in FAISS_METRICS:
            raise ValueError(f"FAISS index supports {', '.join(FAISS_METRICS)}, not {metric}")
        faiss = _faiss()
        started = time.perf_counter()
        n, dim = features.shape
        nlist = nlist or default_nlist(n)
        ip = metric in ("cosine", "inner_product")
        quantizer = faiss.IndexFlatIP(dim) if ip else faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2)
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, size=min(n, max(train_size, nlist * 40)), replace=False))
        index.cp.seed = seed
        index.train(_rows(features[sample], metric))
        for start in range(0, n, ADD_CHUNK):
            index.add(_rows(features[start : start + ADD_CHUNK], metric))
            if progress:
                progress(min(start + ADD_CHUNK, n), n)
        info = IndexInfo(metric, n, dim, nlist, nprobe=1, recall_at_k=None, k=15, build_s=time.perf_counter() - started)
        return cls(index, info)

    def _raw_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, idx = self.index.search(_rows(np.atleast_2d(queries), self.metric), k)
        if self.metric == "cosine":
            dist = 1.0 - scores
        elif self.metric == "inner_product":
            dist = -scores
        elif self.metric == "euclidean":
            dist = np.sqrt(np.maximum(scores, 0.0))
        else:
            dist = scores
        return idx.astype(np.int64), dist.astype(np.float64)

    def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Indices and distances of the (approximately) k nearest rows per query, best first."""
        k = min(k, self.info.n - (0 if exclude is None else 1))
        idx, dist = self._raw_search(queries, k + (0 if exclude is None else 1))
        if exclude is None:
            return idx, dist
        out_i, out_d = np.empty((len(idx), k), np.int64), np.empty((len(idx), k))
        for r, (row_i, row_d, ex) in enumerate(zip(idx, dist, np.broadcast_to(exclude, (len(idx),)))):
            keep = row_i != ex
            out_i[r], out_d[r] = row_i[keep][:k], row_d[keep][:k]
        return out_i, out_d

    def tune(self, queries: np.ndarray, exact_neighbours: np.ndarray, target: float = TARGET_RECALL) -> IndexInfo:
        """Smallest nprobe (1, 2, 3, 4, 6, 8, 12, … nlist) whose recall@k against ``exact_neighbours`` reaches ``target``."""
        k = exact_neighbours.shape[1]
        for nprobe in nprobe_steps(self.info.nlist):
            self.index.nprobe = nprobe
            found, _ = self._raw_search(queries, k)
            recall = recall_at_k(found, exact_neighbours)
            if recall >= target:
                break
        self.info.nprobe, self.info.recall_at_k, self.info.k = nprobe, recall, k
        return self.info

    def save(self, path: Path) -> None:
        faiss = _faiss()
        with cache.atomic_path(path) as tmp:
            faiss.write_index(self.index, str(tmp))
        cache.write_json_atomic(path.with_suffix(".json"), {**asdict(self.info), "bytes": path.stat().st_size})

    @classmethod
    def load(cls, path: Path) -> FaissIndex | None:
        """The saved index, or None when it is missing or does not match its sidecar."""
        side = path.with_suffix(".json")
        if not (path.exists() and side.exists()):
            return None
        try:
            meta = json.loads(side.read_text())
            if meta.pop("bytes") != path.stat().st_size:
                raise ValueError("size does not match the sidecar")
            return cls(_faiss().read_index(str(path)), IndexInfo(**meta))
        except (OSError, ValueError, TypeError, KeyError, RuntimeError):  # unreadable: rebuild, never trust
            cache.safe_remove(path)
            cache.safe_remove(side)
            return None


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


def exact_neighbours(features: np.ndarray, queries: np.ndarray, metric: str, k: int, block: int = 131_072) -> np.ndarray:
    """Exact top-k of queries over a (possibly memory-mapped) matrix, block by block (bounded memory)."""
    best_d = np.full((len(queries), 0), np.inf)
    best_i = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(features), block):
        idx, dist = ExactIndex(features[start : start + block], metric).search(queries, k)
        best_i = np.concatenate([best_i, idx + start], axis=1)
        best_d = np.concatenate([best_d, dist], axis=1)
        order = np.argsort(best_d, axis=1, kind="stable")[:, :k]
        best_i, best_d = np.take_along_axis(best_i, order, 1), np.take_along_axis(best_d, order, 1)
    return best_i


@dataclass(frozen=True)
class SearchBackend:
    """What a search will use, and why (shown in the UI)."""

    kind: str  # "exact" | "faiss-ivf"
    note: str


def choose_backend(n: int, metric: str) -> SearchBackend:
    check_metric(metric)
    if n < ANN_MIN_ROWS:
        return SearchBackend("exact", f"exact search over {n:,} vectors (numpy)")
    if metric not in FAISS_METRICS:
        return SearchBackend("exact", f"{metric} has no FAISS index: exact search over {n:,} vectors (slower at this size)")
    return SearchBackend("faiss-ivf", f"FAISS IVF index over {n:,} vectors, nprobe tuned for recall@15 ≥ {TARGET_RECALL}")


def get_index(features: np.ndarray, metric: str, features_key: str, p: float | None = None,
              progress: Progress | None = None) -> tuple[ExactIndex | FaissIndex, SearchBackend]:
    """The index a search over these features should use: exact, or a FAISS index built once and cached on disk."""
    backend = choose_backend(len(features), metric)
    if backend.kind == "exact":
        return ExactIndex(features, metric, p), backend
    path = cache.entry_dir("ann") / f"{cache.make_key('ann', features=features_key, metric=metric, target=TARGET_RECALL)}.faiss"
    index = FaissIndex.load(path)
    if index is None:
        index = FaissIndex.build(features, metric, progress=progress)
        rng = np.random.default_rng(1)
        q = np.asarray(features[np.sort(rng.choice(len(features), size=min(200, len(features)), replace=False))])
        index.tune(q, exact_neighbours(features, q, metric, 15), TARGET_RECALL + TUNE_MARGIN)
        index.save(path)
    info = index.info
    return index, SearchBackend("faiss-ivf", f"FAISS IVF index over {info.n:,} vectors: nlist {info.nlist}, nprobe "
                                f"{info.nprobe}, measured recall@{info.k} {info.recall_at_k:.3f} vs exact")
