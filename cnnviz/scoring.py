"""The position-weighted search score, precision@k and leave-one-out kNN accuracy.

Search score (ConvNet Playground's definition): rank every other image of the
dataset by similarity to the query (the query itself excluded) and take the
top k = 15. Result i (0 = best) has weight (k − i) / k. The score is
100 × Σ weights of results sharing the query's class / Σ all weights.
A dataset's score is the mean over all its images used as queries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .search import ExactIndex

DEFAULT_K = 15
DEFAULT_KNN_K = 5
_QUERY_CHUNK = 1024


def position_weights(k: int) -> np.ndarray:
    """(k − i) / k for i = 0 … k−1."""
    return (k - np.arange(k)) / k


def search_score(result_labels: Sequence, query_label, k: int = DEFAULT_K) -> float:
    """Score of one query from its ranked result labels (best first)."""
    labels = list(result_labels)[:k]
    if not labels:
        return float("nan")
    w = position_weights(k)[: len(labels)]
    hits = np.array([lab == query_label for lab in labels], dtype=float)
    return float(100.0 * (w * hits).sum() / w.sum())


def precision_at_k(result_labels: Sequence, query_label, k: int = DEFAULT_K) -> float:
    labels = list(result_labels)[:k]
    return float(np.mean([lab == query_label for lab in labels])) if labels else float("nan")


def knn_vote(neighbor_labels: Sequence) -> object:
    """Majority class of the neighbours; a tie goes to the tied class ranked first."""
    counts = Counter(neighbor_labels)
    best = max(counts.values())
    return next(lab for lab in neighbor_labels if counts[lab] == best)


@dataclass
class RetrievalReport:
    """Every image used as a query against all the others."""

    k: int
    knn_k: int
    query_scores: np.ndarray  # (N,) search score of each query
    query_precision: np.ndarray  # (N,) precision@k of each query
    knn_correct: np.ndarray  # (N,) bool: leave-one-out kNN got the class right
    labels: list
    per_class: dict = field(default_factory=dict)  # class -> mean search score

    @property
    def mean_score(self) -> float:
        return float(np.mean(self.query_scores))

    @property
    def precision(self) -> float:
        return float(np.mean(self.query_precision))

    @property
    def knn_accuracy(self) -> float:
        return float(np.mean(self.knn_correct))


def neighbours_of_all(features: np.ndarray, metric: str, p: float | None, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k neighbours of every row among the other rows (self excluded)."""
    index = ExactIndex(features, metric, p)
    idx_parts, dist_parts = [], []
    for start in range(0, len(features), _QUERY_CHUNK):
        rows = np.arange(start, min(start + _QUERY_CHUNK, len(features)))
        i, d = index.search(features[rows], k, exclude=rows)
        idx_parts.append(i)
        dist_parts.append(d)
    return np.concatenate(idx_parts), np.concatenate(dist_parts)


def evaluate_retrieval(features: np.ndarray, labels: Sequence, metric: str = "cosine", p: float | None = None,
                       k: int = DEFAULT_K, knn_k: int = DEFAULT_KNN_K) -> RetrievalReport:
    """Search score, precision@k and leave-one-out kNN accuracy over a labelled set."""
    labels = list(labels)
    if len(labels) != len(features):
        raise ValueError("one label per feature row is required")
    if len(labels) < 2:
        raise ValueError("need at least two images to evaluate retrieval")
    neighbours, _ = neighbours_of_all(features, metric, p, max(k, knn_k))
    lab = np.array(labels, dtype=object)
    # Vectorised form of search_score / precision_at_k over all queries at once.
    hits = lab[neighbours[:, :k]] == lab[:, None]
    w = position_weights(k)[: hits.shape[1]]
    scores = 100.0 * (hits * w).sum(axis=1) / w.sum()
    precision = hits.mean(axis=1)
    knn = np.array([knn_vote(list(lab[row[:knn_k]])) == labels[q] for q, row in enumerate(neighbours)])
    per_class = {c: float(scores[lab == c].mean()) for c in sorted(set(labels), key=str)}
    return RetrievalReport(k, knn_k, scores, precision, knn, labels, per_class)
