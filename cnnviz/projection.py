"""2-D maps of a layer's feature space: UMAP, with PCA as the instant fallback.

UMAP's first ``fit_transform`` in a process spends ~20 s compiling numba code
(0.9 s afterwards on 200 points): :func:`warm_up_umap` pays that once per
server process in the background, and pages show PCA until UMAP is ready.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

PROJECTIONS = ("umap", "pca")


@dataclass(frozen=True)
class ProjectionConfig:
    method: str = "umap"
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "cosine"  # UMAP's input metric (euclidean, cosine, manhattan, chebyshev, minkowski…)
    seed: int = 0

    def __post_init__(self):
        if self.method not in PROJECTIONS:
            raise ValueError(f"unknown projection {self.method!r}; choose one of: {', '.join(PROJECTIONS)}")


_UMAP_METRICS = {"cosine": "cosine", "euclidean": "euclidean", "sqeuclidean": "euclidean", "minkowski": "minkowski",
                 "manhattan": "manhattan", "chebyshev": "chebyshev", "inner_product": "cosine"}


def umap_metric(search_metric: str) -> str:
    """The UMAP metric closest to a cnnviz search metric (inner product → cosine)."""
    return _UMAP_METRICS.get(search_metric, "euclidean")


def pca_2d(features: np.ndarray) -> np.ndarray:
    """Top-2 principal components (deterministic sign)."""
    x = np.asarray(features, np.float64)
    x = x - x.mean(axis=0)
    if len(x) < 2:
        return np.zeros((len(x), 2), np.float32)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:2]
    comps *= np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])[:, None]
    out = x @ comps.T
    if out.shape[1] < 2:
        out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    return out.astype(np.float32)


def _umap_module():
    try:
        import umap
    except ImportError as exc:  # pragma: no cover - umap-learn is in requirements.txt
        raise ImportError("UMAP maps need umap-learn: pip install umap-learn") from exc
    return umap


def project(features: np.ndarray, config: ProjectionConfig = ProjectionConfig()) -> np.ndarray:
    """(N, 2) float32 coordinates of the rows of ``features``."""
    if config.method == "pca" or len(features) < 4:
        return pca_2d(features)
    umap = _umap_module()
    reducer = umap.UMAP(n_components=2, n_neighbors=min(config.n_neighbors, len(features) - 1),
                        min_dist=config.min_dist, metric=config.metric, random_state=config.seed, n_jobs=1)
    return np.asarray(reducer.fit_transform(np.asarray(features, np.float32)), np.float32)


_warm = threading.Event()


def umap_ready() -> bool:
    return _warm.is_set()


def warm_up_umap() -> threading.Thread:
    """Compile UMAP's numba code in a background thread (once per process)."""

    def run():
        rng = np.random.default_rng(0)
        project(rng.normal(size=(40, 8)).astype(np.float32), ProjectionConfig(n_neighbors=5))
        _warm.set()

    t = threading.Thread(target=run, name="umap-warm-up", daemon=True)
    t.start()
    return t
