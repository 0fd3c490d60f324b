"""The position-weighted search score, precision@k and leave-one-out kNN accuracy, per query and per dataset.

Search score (ConvNet Playground's definition): rank every other image of the
dataset by similarity to the query (the query itself excluded) and take the
top k = 15. Result i (0 = best) has weight (k − i) / k. The score is
100 × Σ weights of results sharing the query's class / Σ all weights.
The score is always taken at k = 15 (:data:`SCORE_K`), however many results
a page or the CLI shows, so scores are comparable everywhere.

A dataset's figures are means over its images used as queries: every image
up to :data:`EXACT_MAX` images, above that a seeded random sample of
:data:`SAMPLE_QUERIES` images, reported with a 95% confidence interval
(normal approximation with the finite-population correction). Memory stays
bounded at any N: queries are searched in blocks by :class:`ExactIndex`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .search import ExactIndex

SCORE_K = 15
DEFAULT_K = SCORE_K  # results shown by default
DEFAULT_KNN_K = 5
EXACT_MAX = 20_000  # up to this many images every image is a query
SAMPLE_QUERIES = 5_000  # above it, this many seeded random queries
_Z95 = 1.959963984540054
_QUERY_CHUNK = 1024


def position_weights(k: int) -> np.ndarray:
    """(k − i) / k for i = 0 … k−1."""
    return (k - np.arange(k)) / k


def hit_scores(hits: np.ndarray, k: int = SCORE_K) -> tuple[np.ndarray, np.ndarray]:
    """Search score and precision@k of each row of ``hits`` ((Q, m) bools, best result first; m < k: fewer results).

    The one implementation of both: :func:`search_score` and :func:`precision_at_k` are this for one query.
    """
    hits = np.atleast_2d(np.asarray(hits, dtype=bool))[:, :k]
    if hits.shape[1] == 0:
        return np.full(len(hits), np.nan), np.full(len(hits), np.nan)
    w = position_weights(k)[: hits.shape[1]]
    # Ratio first, then × 100, and both sums in one shape and order: (100 · a) / a is not always 100 in floats
    # (six hits of six at k = 18 scored 100.00000000000001; found by hypothesis). Float addition and division
    # are monotonic, so the hits' weight over the same-order total stays within 0..1.
    hit_weight = (hits * w).sum(axis=1)
    total_weight = (np.ones(hits.shape) * w).sum(axis=1)
    return 100.0 * (hit_weight / total_weight), hits.mean(axis=1)


def _hits(result_labels: Sequence, query_label) -> np.ndarray:
    return np.array([[lab == query_label for lab in result_labels]], dtype=bool).reshape(1, -1)


def search_score(result_labels: Sequence, query_label, k: int = SCORE_K) -> float:
    """Score of one query from its ranked result labels (best first)."""
    return float(hit_scores(_hits(result_labels, query_label), k)[0][0])


def precision_at_k(result_labels: Sequence, query_label, k: int = SCORE_K) -> float:
    """Share of the first k results in the query's class."""
    return float(hit_scores(_hits(result_labels, query_label), k)[1][0])


def knn_vote(neighbor_labels: Sequence) -> object:
    """Majority class of the neighbours; a tie goes to the tied class ranked first."""
    counts = Counter(neighbor_labels)
    best = max(counts.values())
    return next(lab for lab in neighbor_labels if counts[lab] == best)


def _ci95(values: np.ndarray, population: int) -> list[float]:
    """95% interval of the population mean from a simple random sample (without replacement) of it."""
    n, mean = len(values), float(np.mean(values))
    if n >= population or n < 2:
        return [mean, mean]
    half = _Z95 * float(np.std(values, ddof=1)) / np.sqrt(n) * np.sqrt((population - n) / (population - 1))
    return [mean - half, mean + half]


@dataclass
class RetrievalReport:
    """Images used as queries against all the others: every image, or a seeded sample above ``EXACT_MAX``."""

    k: int
    knn_k: int
    n_images: int
    queries: np.ndarray  # (Q,) row index of each query
    query_scores: np.ndarray  # (Q,) search score of each query
    query_precision: np.ndarray  # (Q,) precision@k of each query
    knn_correct: np.ndarray  # (Q,) bool: leave-one-out kNN got the class right
    per_class: dict = field(default_factory=dict)  # class -> mean search score over its queries
    seed: int | None = None  # the sample's seed (None: every image was a query)

    @property
    def n_queries(self) -> int:
        return len(self.queries)

    @property
    def exact(self) -> bool:
        return self.n_queries == self.n_images

    @property
    def mean_score(self) -> float:
        return float(np.mean(self.query_scores))

    @property
    def precision(self) -> float:
        return float(np.mean(self.query_precision))

    @property
    def knn_accuracy(self) -> float:
        return float(np.mean(self.knn_correct))

    @property
    def ci95(self) -> dict | None:
        """[low, high] 95% interval of each dataset figure; None when every image was a query (exact)."""
        if self.exact:
            return None
        return {"mean_score": _ci95(self.query_scores, self.n_images),
                "precision_at_k": _ci95(self.query_precision, self.n_images),
                "knn_accuracy": _ci95(self.knn_correct.astype(float), self.n_images)}

    def to_dict(self, per_query: bool = False) -> dict:
        """The one plain shape of a report (CLI JSON, UI cache, benchmark)."""
        out = {"mean_score": self.mean_score, "precision_at_k": self.precision, "knn_accuracy": self.knn_accuracy,
               "score_k": self.k, "knn_k": self.knn_k, "n_images": self.n_images, "n_queries": self.n_queries,
               "ci95": self.ci95, "per_class": self.per_class}
        if per_query:
            out["query_scores"] = self.query_scores.tolist()
        return out


def query_rows(n: int, exact_max: int = EXACT_MAX, sample: int = SAMPLE_QUERIES, seed: int = 0) -> np.ndarray:
    """Every row up to ``exact_max`` rows, else a sorted seeded sample of ``sample`` rows."""
    if n <= exact_max:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False))


def neighbours_of(features: np.ndarray, rows: np.ndarray, metric: str, p: float | None, k: int,
                  progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k neighbours of the given rows among all the other rows (each query excluded from its own results)."""
    index = ExactIndex(features, metric, p)
    idx_parts, dist_parts = [], []
    for start in range(0, len(rows), _QUERY_CHUNK):
        block = rows[start : start + _QUERY_CHUNK]
        i, d = index.search(np.asarray(features[block]), k, exclude=block)
        idx_parts.append(i)
        dist_parts.append(d)
        if progress:
            progress(min(start + _QUERY_CHUNK, len(rows)), len(rows))
    if not idx_parts:
        return np.zeros((0, k), np.int64), np.zeros((0, k))
    return np.concatenate(idx_parts), np.concatenate(dist_parts)


def neighbours_of_all(features: np.ndarray, metric: str, p: float | None, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k neighbours of every row among the other rows (self excluded)."""
    return neighbours_of(features, np.arange(len(features)), metric, p, k)


def evaluate_retrieval(features: np.ndarray, labels: Sequence, metric: str = "cosine", p: float | None = None,
                       k: int = SCORE_K, knn_k: int = DEFAULT_KNN_K, exact_max: int = EXACT_MAX,
                       sample: int = SAMPLE_QUERIES, seed: int = 0, progress=None) -> RetrievalReport:
    """Search score, precision@k and leave-one-out kNN accuracy over a labelled set.

    The dashboard, the CLI and the benchmark always use k = :data:`SCORE_K`; other k are for studies and tests.
    """
    labels = list(labels)
    if len(labels) != len(features):
        raise ValueError("one label per feature row is required")
    if len(labels) < 2:
        raise ValueError("need at least two images to evaluate retrieval")
    rows = query_rows(len(labels), exact_max, sample, seed)
    neighbours, _ = neighbours_of(features, rows, metric, p, max(k, knn_k), progress)
    lab = np.array(labels, dtype=object)
    q_lab = lab[rows]
    scores, precision = hit_scores(lab[neighbours[:, :k]] == q_lab[:, None], k)
    knn = np.array([knn_vote(list(lab[row[:knn_k]])) == q_lab[i] for i, row in enumerate(neighbours)])
    per_class = {c: float(scores[q_lab == c].mean()) for c in sorted(set(q_lab.tolist()), key=str)}
    return RetrievalReport(k, knn_k, len(labels), rows, scores, precision, knn, per_class,
                           None if len(rows) == len(labels) else seed)


def figure_text(report: dict, key: str, digits: int) -> str:
    """A dataset figure as shown: ``62.3`` when every image was a query, ``62.3 ± 0.8`` (95% interval) when sampled."""
    value, ci = report[key], report.get("ci95")
    if not ci:
        return f"{value:.{digits}f}"
    low, high = ci[key]
    return f"{value:.{digits}f} ± {(high - low) / 2:.{digits}f}"


def figures_note(report: dict) -> str:
    """Which queries the dataset figures come from (shown next to them)."""
    if not report.get("ci95"):
        return f"every one of the {report['n_images']:,} images as the query; k = {report['score_k']}"
    return (f"a seeded random sample of {report['n_queries']:,} of the {report['n_images']:,} images as queries; "
            f"± is the 95% confidence interval; k = {report['score_k']}")
