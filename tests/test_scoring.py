import numpy as np
import pytest

from cnnviz.scoring import evaluate_retrieval, knn_vote, position_weights, precision_at_k, search_score


def test_weights():
    np.testing.assert_allclose(position_weights(4), [1.0, 0.75, 0.5, 0.25])


def test_score_hand_computed():
    # k=4 weights 1, .75, .5, .25 (sum 2.5). Hits at positions 0 and 2: (1 + .5) / 2.5 = 60.
    assert search_score(["a", "b", "a", "c"], "a", k=4) == pytest.approx(60.0)
    # Hit only at the last position: .25 / 2.5 = 10.
    assert search_score(["b", "b", "b", "a"], "a", k=4) == pytest.approx(10.0)
    assert search_score(["a"] * 15, "a") == pytest.approx(100.0)
    assert search_score(["b"] * 15, "a") == 0.0


def test_score_default_k15_position_matters():
    first = ["a"] + ["b"] * 14
    last = ["b"] * 14 + ["a"]
    # weights (15 - i) / 15, total 8: first = 1/8, last = (1/15)/8
    assert search_score(first, "a") == pytest.approx(100 / 8)
    assert search_score(last, "a") == pytest.approx(100 / 15 / 8)


def test_score_with_fewer_results_than_k():
    # 2 results with k=4: weights 1, .75 → hit at 1: .75 / 1.75
    assert search_score(["b", "a"], "a", k=4) == pytest.approx(100 * 0.75 / 1.75)


def test_precision_and_knn_vote():
    assert precision_at_k(["a", "b", "a", "c"], "a", k=4) == 0.5
    assert knn_vote(["b", "a", "a", "b", "c"]) == "b"  # tie a/b: b ranks first
    assert knn_vote(["c", "a", "a"]) == "a"


def test_evaluate_retrieval_on_a_hand_checked_set():
    # 1-D points: class x at 0, 1, 2 and class y at 10, 11, 30.
    feats = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [30.0]], np.float32)
    labels = ["x", "x", "x", "y", "y", "y"]
    rep = evaluate_retrieval(feats, labels, "euclidean", k=2, knn_k=1)
    # query 30: neighbours 11 (y), 10 (y) → 100. query 10: 11 (y), 2 (x) → 1/1.5 = 66.7
    assert rep.query_scores[5] == pytest.approx(100.0)
    assert rep.query_scores[3] == pytest.approx(100 / 1.5)
    # query 2: neighbours 1 (x), 0 (x) → 100
    assert rep.query_scores[2] == pytest.approx(100.0)
    assert rep.knn_accuracy == 1.0
    assert rep.per_class["x"] == pytest.approx(100.0)
    assert rep.mean_score == pytest.approx(np.mean(rep.query_scores))


def test_vectorised_dataset_scores_equal_per_query_definition(rng):
    feats = rng.normal(size=(60, 5)).astype(np.float32)
    labels = list(rng.integers(0, 4, size=60))
    rep = evaluate_retrieval(feats, labels, "cosine", k=15)
    from cnnviz.scoring import neighbours_of_all

    neigh, _ = neighbours_of_all(feats, "cosine", None, 15)
    for q in range(60):
        ranked = [labels[i] for i in neigh[q]]
        assert rep.query_scores[q] == pytest.approx(search_score(ranked, labels[q], 15))
        assert rep.query_precision[q] == pytest.approx(precision_at_k(ranked, labels[q], 15))
