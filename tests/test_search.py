import numpy as np
import pytest
from scipy.spatial.distance import cdist

from cnnviz.errors import UnknownNameError
from cnnviz.search import METRICS, ExactIndex, similarity, top_k_smallest

SCIPY = {"cosine": ("cosine", {}), "euclidean": ("euclidean", {}), "sqeuclidean": ("sqeuclidean", {}),
         "minkowski": ("minkowski", {"p": 3.0}), "manhattan": ("cityblock", {}), "chebyshev": ("chebyshev", {})}


@pytest.mark.parametrize("metric", METRICS)
def test_distances_match_scipy(metric, rng):
    base = rng.normal(size=(50, 16)).astype(np.float32)
    q = rng.normal(size=(3, 16)).astype(np.float32)
    got = ExactIndex(base, metric, p=3.0).distances(q)
    if metric == "inner_product":
        want = -(q.astype(np.float64) @ base.T)
    else:
        name, kw = SCIPY[metric]
        want = cdist(q.astype(np.float64), base.astype(np.float64), name, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_minkowski_p2_ranks_like_euclidean_and_p1_like_manhattan(rng):
    base = rng.normal(size=(100, 8)).astype(np.float32)
    q = base[:1] + 0.1
    rank = lambda m, p=None: ExactIndex(base, m, p).search(q, 20)[0]
    np.testing.assert_array_equal(rank("minkowski", 2), rank("euclidean"))
    np.testing.assert_array_equal(rank("minkowski", 1), rank("manhattan"))


def test_search_excludes_the_query_and_sorts(rng):
    base = rng.normal(size=(30, 4)).astype(np.float32)
    idx, dist = ExactIndex(base, "euclidean").search(base[[5]], 10, exclude=np.array([5]))
    assert 5 not in idx[0] and len(idx[0]) == 10
    assert np.all(np.diff(dist[0]) >= 0)


def test_k_larger_than_dataset(rng):
    base = rng.normal(size=(4, 3)).astype(np.float32)
    idx, _ = ExactIndex(base, "cosine").search(base[[0]], 15, exclude=np.array([0]))
    assert sorted(idx[0]) == [1, 2, 3]


def test_ties_are_broken_by_index():
    d = np.array([[1.0, 0.5, 0.5, 0.5, 2.0]])
    idx, _ = top_k_smallest(d, 2)
    assert idx.tolist() == [[1, 2]]


def test_similarity_is_monotone_decreasing_in_distance():
    d = np.linspace(0, 3, 20)
    for m in METRICS:
        s = similarity(d, m)
        assert np.all(np.diff(s) < 0), m


def test_bad_metric_and_p():
    with pytest.raises(UnknownNameError, match="cosine"):
        ExactIndex(np.zeros((2, 2), np.float32), "hamming")
    with pytest.raises(UnknownNameError, match="p ≥ 1"):
        ExactIndex(np.zeros((2, 2), np.float32), "minkowski", p=0.5)
