"""Dataset-level views of one layer, computed once and kept in the disk cache: the retrieval report
(search score of every image, or of a seeded sample) and the 2-D map (UMAP or PCA).

Both are seconds to minutes at 10k+ images (10,000 × 1280 on 2 cores: report 7 s, UMAP about a minute),
so the dashboard computes them in a background job the first time and every later session, page switch or
server restart reads a few kilobytes from the cache instead. Keyed by the features' own cache key (dataset
content, model identity, layer, pooling) plus the setting, so a changed folder or model never reads a stale view.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np

from . import cache
from .progress import Progress
from .projection import ProjectionConfig, project
from .scoring import evaluate_retrieval

log = logging.getLogger(__name__)

KIND = "overview"  # a derived cache kind: the quota may evict it (it is recomputed on demand)
OVERVIEW_VERSION = 3  # bump when what is stored changes (2: UMAP starts from PCA; 3: rows beyond the fit placed by neighbours)


def report_key(features_key: str, metric: str, p: float | None) -> str:
    return cache.make_key(KIND, view="report", features=features_key, metric=metric, p=p, version=OVERVIEW_VERSION)


def projection_key(features_key: str, config: ProjectionConfig) -> str:
    return cache.make_key(KIND, view="projection", features=features_key, config=asdict(config),
                          version=OVERVIEW_VERSION)


def compute_report(key: str, features: np.ndarray, labels: Sequence, metric: str, p: float | None,
                   progress: Progress | None = None) -> dict:
    """The retrieval report (``RetrievalReport.to_dict(per_query=True)``), stored under ``key``."""
    report = evaluate_retrieval(features, labels, metric, p, progress=progress).to_dict(per_query=True)
    scores = np.asarray(report.pop("query_scores"), np.float64)
    _store(key, {"query_scores": scores}, {"report": report})
    return {**report, "query_scores": scores.tolist()}


def _store(key: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Keep a view on disk; a full disk or quota only costs the reuse (the view is still returned)."""
    try:
        cache.save_arrays(KIND, key, arrays, meta)
    except cache.CacheFullError as exc:
        log.warning("not keeping dataset view %s: %s", key[:12], exc)


def load_report(key: str) -> dict | None:
    """The stored report, or None when it was not computed yet (or was evicted)."""
    hit = cache.load_arrays(KIND, key)
    if hit is None:
        return None
    arrays, meta = hit
    return {**meta["report"], "query_scores": arrays["query_scores"].tolist()}


def compute_projection(key: str, features: np.ndarray, config: ProjectionConfig) -> np.ndarray:
    """(N, 2) map coordinates, stored under ``key``."""
    points = np.asarray(project(features, config), np.float32)
    _store(key, {"points": points}, {"config": asdict(config)})
    return points


def load_projection(key: str) -> np.ndarray | None:
    hit = cache.load_arrays(KIND, key)
    return None if hit is None else hit[0]["points"]

