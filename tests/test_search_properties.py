"""Property tests (hypothesis): distances, top-k and the search score against scipy and the definitions.

Inputs include ties (values from a small set), duplicate rows, rectified (ReLU-like) rows and norms near 1e3.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from cnnviz.scoring import hit_scores, position_weights, precision_at_k, search_score
from cnnviz.search import METRICS, ExactIndex, top_k_smallest

SCIPY = {"manhattan": "cityblock"}
FAST = settings(max_examples=60, deadline=None)


@st.composite
def feature_sets(draw):
    """(n, d) float32 rows: smooth, tied (few distinct values) or duplicated; optionally rectified and scaled to ~1e3."""
    n, d = draw(st.integers(3, 40)), draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["normal", "ties", "duplicates"]))
    if kind == "ties":
        x = rng.integers(-2, 3, size=(n, d)).astype(np.float64)
    else:
        x = rng.normal(size=(n, d))
    if kind == "duplicates":
        x = x[rng.integers(0, max(2, n // 3), n)]
    if draw(st.booleans()):
        x = np.maximum(x, 0)  # ReLU features: many exact zeros
    scale = draw(st.sampled_from([1.0, 1e3, 3.7e3]))
    return (x * scale).astype(np.float32)


def reference(x: np.ndarray, queries: np.ndarray, metric: str, p: float) -> np.ndarray:
    """float64 scipy cdist (cosine of a zero vector: 1, cnnviz's convention; inner product: −x·y)."""
    a, b = x[queries].astype(np.float64), x.astype(np.float64)
    if metric == "inner_product":
        return -(a @ b.T)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = cdist(a, b, SCIPY.get(metric, metric), **({"p": p} if metric == "minkowski" else {}))
    return np.where(np.isnan(d), 1.0, d)


@FAST
@given(x=feature_sets(), metric=st.sampled_from(METRICS), p=st.sampled_from([1.0, 1.5, 2.0, 3.0, 4.5]),
       k=st.integers(1, 20), exclude=st.booleans())
def test_exact_search_ranks_like_float64_cdist(x, metric, p, k, exclude):
    queries = np.arange(min(len(x), 5))
    ref = reference(x, queries, metric, p)
    if exclude:
        ref[queries, queries] = np.inf
    k_eff = min(k, len(x) - int(exclude))
    want = np.lexsort((np.broadcast_to(np.arange(len(x)), ref.shape), ref), axis=1)[:, :k_eff]  # ties by index
    idx, dist = ExactIndex(x, metric, p).search(x[queries], k, exclude=queries if exclude else None)
    assert idx.shape == (len(queries), k_eff)
    np.testing.assert_allclose(dist, np.take_along_axis(ref, want, 1), rtol=1e-12, atol=1e-9)
    if metric != "inner_product":  # cdist's own values: the same order, ties by index included
        np.testing.assert_array_equal(idx, want)
    else:  # a float64 product's last bit depends on the BLAS blocking: compare values
        np.testing.assert_allclose(np.take_along_axis(ref, idx, 1), np.take_along_axis(ref, want, 1), rtol=1e-12)


@FAST
@given(x=feature_sets(), metric=st.sampled_from(METRICS))
def test_distances_equal_cdist(x, metric):
    got = ExactIndex(x, metric, 3.0).distances(x[:3])
    np.testing.assert_allclose(got, reference(x, np.arange(min(3, len(x))), metric, 3.0), rtol=1e-12, atol=1e-9)


@FAST
@given(rows=st.integers(1, 6), n=st.integers(1, 30), k=st.integers(0, 35), seed=st.integers(0, 2**32 - 1))
def test_top_k_smallest_is_a_stable_sort_prefix(rows, n, k, seed):
    d = np.random.default_rng(seed).integers(0, 4, size=(rows, n)).astype(float)  # many ties
    idx, vals = top_k_smallest(d, k)
    want = np.argsort(d, axis=1, kind="stable")[:, : min(k, n)]
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_array_equal(vals, np.take_along_axis(d, want, 1))


@FAST
@given(labels=st.lists(st.sampled_from("abc"), min_size=0, max_size=20), query=st.sampled_from("abc"),
       k=st.integers(1, 20))
def test_score_and_precision_follow_the_definition(labels, query, k):
    top = labels[:k]
    w = [(k - i) / k for i in range(len(top))]
    hits = [lab == query for lab in top]
    score, precision = search_score(labels, query, k), precision_at_k(labels, query, k)
    if not top:
        assert np.isnan(score) and np.isnan(precision)
        return
    assert score == np.float64(100 * sum(wi for wi, h in zip(w, hits) if h) / sum(w)) or abs(
        score - 100 * sum(wi for wi, h in zip(w, hits) if h) / sum(w)) < 1e-9
    assert abs(precision - sum(hits) / len(top)) < 1e-12
    assert 0 <= score <= 100
    vec_score, vec_precision = hit_scores([hits], k)  # the vectorised form is the same function
    assert vec_score[0] == score and vec_precision[0] == precision
    if all(hits):
        assert score == 100
    if len(top) == k and hits and hits[0] and not any(hits[1:]):
        assert abs(score - 100 * position_weights(k)[0] / position_weights(k).sum()) < 1e-9
