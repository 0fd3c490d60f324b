"""2-D maps of a layer's feature space: UMAP, with PCA as the instant fallback.

UMAP's first ``fit_transform`` in a process spends 15-60 s compiling numba code
(0.9 s afterwards on 200 points): :func:`warm_up_umap` pays that once per
server process in the background, and pages show PCA until UMAP is ready.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

PROJECTIONS = ("umap", "pca")
FIT_MAX = 10_000  # UMAP and PCA are fitted on at most this many rows (a seeded sample); the rest are transformed
MAP_MAX_POINTS = 5_000  # points drawn on a map; larger sets show a sample plus the query and its results


@dataclass(frozen=True)
class ProjectionConfig:
    method: str = "umap"
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "cosine"  # UMAP's input metric (euclidean, cosine, manhattan, chebyshev, minkowski…)
    seed: int = 0
    fit_max: int = FIT_MAX

    def __post_init__(self):
        if self.method not in PROJECTIONS:
            raise ValueError(f"unknown projection {self.method!r}; choose one of: {', '.join(PROJECTIONS)}")


_UMAP_METRICS = {"cosine": "cosine", "euclidean": "euclidean", "sqeuclidean": "euclidean", "minkowski": "minkowski",
                 "manhattan": "manhattan", "chebyshev": "chebyshev", "inner_product": "cosine"}


def umap_metric(search_metric: str) -> str:
    """The UMAP metric closest to a cnnviz search metric (inner product → cosine)."""
    return _UMAP_METRICS.get(search_metric, "euclidean")


def fit_sample(n: int, fit_max: int = FIT_MAX, seed: int = 0) -> np.ndarray:
    """Sorted row indices a projection is fitted on: all rows, or a seeded sample of ``fit_max``."""
    if n <= fit_max:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=fit_max, replace=False))


def _in_chunks(features: np.ndarray, fn, chunk: int = 65_536) -> np.ndarray:
    return np.concatenate([fn(np.asarray(features[s : s + chunk], np.float32)) for s in range(0, len(features), chunk)])


def pca_2d(features: np.ndarray, fit_max: int = FIT_MAX, seed: int = 0) -> np.ndarray:
    """Top-2 principal components (deterministic sign), fitted on at most ``fit_max`` rows."""
    if len(features) < 2:
        return np.zeros((len(features), 2), np.float32)
    from scipy.linalg import eigh

    x = np.asarray(features[fit_sample(len(features), fit_max, seed)], np.float64)
    mean = x.mean(axis=0)
    x -= mean
    cov = x.T @ x
    # Only the top two eigenvectors of the D × D covariance: 0.4 s at 10,000 × 1280, where sklearn's full SVD
    # of the rows took 12 s and a full eigendecomposition 3 s on this 2-core VM.
    d = len(cov)
    _, vecs = eigh(cov, subset_by_index=[max(d - 2, 0), d - 1])
    comps = vecs[:, ::-1].T.copy()
    comps *= np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])[:, None]
    if len(comps) < 2:
        comps = np.pad(comps, ((0, 2 - len(comps)), (0, 0)))
    return _in_chunks(features, lambda c: ((c - mean) @ comps.T).astype(np.float32))


def _umap_module():
    try:
        import umap
    except ImportError as exc:  # pragma: no cover - umap-learn is in requirements.txt
        raise ImportError("UMAP maps need umap-learn: pip install umap-learn") from exc
    return umap


def project(features: np.ndarray, config: ProjectionConfig = ProjectionConfig()) -> np.ndarray:
    """(N, 2) float32 coordinates of the rows of ``features``."""
    if config.method == "pca" or len(features) < 4:
        return pca_2d(features, config.fit_max, config.seed)
    umap = _umap_module()
    fit_rows = fit_sample(len(features), config.fit_max, config.seed)
    # init="pca": the default spectral start dominated the fit (5,000 × 1280 Fashion-MNIST features on this
    # 2-core VM: 49 s spectral, 11 s pca); seeded runs are single-threaded (n_jobs=1) to stay reproducible.
    reducer = umap.UMAP(n_components=2, n_neighbors=min(config.n_neighbors, len(fit_rows) - 1),
                        min_dist=config.min_dist, metric=config.metric, random_state=config.seed, n_jobs=1,
                        init="pca")
    fitted = np.asarray(reducer.fit_transform(np.asarray(features[fit_rows], np.float32)), np.float32)
    if len(fit_rows) == len(features):
        return fitted
    return place_by_neighbours(features, fit_rows, fitted, config.metric, config.n_neighbors)


def place_by_neighbours(features: np.ndarray, fit_rows: np.ndarray, fitted: np.ndarray, metric: str,
                        k: int = 15, block: int = 4_096) -> np.ndarray:
    """Every row's map position: the fitted rows keep theirs, the others go to the inverse-distance weighted mean
    of their ``k`` nearest fitted rows (exact search in ``metric``).

    UMAP's own ``transform`` starts from such a weighted mean and then refines it with optimisation epochs:
    80 s per 5,000 rows on this 2-core VM (5,000 fitted Fashion-MNIST features), so a 1M-image map would take
    hours; this placement needs one exact k-NN search of the other rows against the fitted sample.
    """
    from .search import ExactIndex

    index = ExactIndex(np.asarray(features[fit_rows], np.float32), _PLACEMENT_METRICS.get(metric, "euclidean"))
    out = np.empty((len(features), 2), np.float32)
    out[fit_rows] = fitted
    rest = np.setdiff1d(np.arange(len(features)), fit_rows)
    k = min(k, len(fit_rows))
    for start in range(0, len(rest), block):
        rows = rest[start : start + block]
        idx, dist = index.search(np.asarray(features[rows], np.float32), k)
        weights = 1.0 / (np.maximum(dist, 0.0) + 1e-6)
        out[rows] = (fitted[idx] * weights[..., None]).sum(axis=1) / weights.sum(axis=1, keepdims=True)
    return out


# UMAP metric -> the exact search metric used to place rows outside the fitted sample (UMAP's minkowski is p = 2).
_PLACEMENT_METRICS = {"cosine": "cosine", "euclidean": "euclidean", "manhattan": "manhattan",
                      "chebyshev": "chebyshev", "minkowski": "euclidean"}


def points_to_draw(n: int, keep: np.ndarray | list[int] = (), cap: int = MAP_MAX_POINTS, seed: int = 0) -> np.ndarray:
    """Row indices to draw on a map: all of them, or a seeded sample of ``cap`` plus ``keep`` (query, results)."""
    if n <= cap:
        return np.arange(n)
    sample = np.random.default_rng(seed).choice(n, size=cap, replace=False)
    return np.union1d(sample, np.asarray(keep, dtype=int))


_warm = threading.Event()


def umap_ready() -> bool:
    return _warm.is_set()


def warm_up_umap() -> threading.Thread:
    """Compile UMAP's numba code in a background thread (once per process)."""

    def run():
        rng = np.random.default_rng(0)
        # Above 4,096 rows UMAP finds neighbours with pynndescent, a second set of numba code: a tiny warm-up
        # left that compile to the first real map (a 10,000-image map then took minutes, not seconds).
        project(rng.normal(size=(4_200, 8)).astype(np.float32), ProjectionConfig(n_neighbors=5))
        _warm.set()

    t = threading.Thread(target=run, name="umap-warm-up", daemon=True)
    t.start()
    return t
