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


def test_all_hits_score_exactly_100_and_never_more():
    """(100 · a) / a is not always 100 in floats: six hits of six at k = 18 once scored 100.00000000000001."""
    assert search_score(["a"] * 6, "a", 18) == 100.0
    for k in range(1, 51):
        for m in range(1, k + 1):
            assert search_score(["a"] * m, "a", k) == 100.0
            assert 0.0 <= search_score(["b"] + ["a"] * (m - 1), "a", k) < 100.0


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


def test_sampled_dataset_figures_hold_the_exact_ones_within_their_95_interval(rng):
    # 1,200 images in 6 overlapping classes; above exact_max=500 a seeded sample of 300 queries.
    labels = rng.integers(0, 6, size=1200)
    feats = (rng.normal(size=(6, 16))[labels] + 1.2 * rng.normal(size=(1200, 16))).astype(np.float32)
    exact = evaluate_retrieval(feats, list(labels), "cosine")
    sampled = evaluate_retrieval(feats, list(labels), "cosine", exact_max=500, sample=300, seed=0)
    assert exact.ci95 is None and exact.n_queries == 1200 and sampled.n_queries == 300 and sampled.seed == 0
    again = evaluate_retrieval(feats, list(labels), "cosine", exact_max=500, sample=300, seed=0)
    assert again.mean_score == sampled.mean_score  # seeded: reproducible
    for key, value in (("mean_score", exact.mean_score), ("precision_at_k", exact.precision),
                       ("knn_accuracy", exact.knn_accuracy)):
        low, high = sampled.ci95[key]
        assert low <= value <= high, (key, low, value, high)
        assert high - low < (20 if key == "mean_score" else 0.2)  # an interval that says something
    # and the interval is a 95% one: over 400 seeds it holds the exact mean about 95% of the time
    from cnnviz.scoring import _ci95, query_rows

    held = [(lambda lo_hi: lo_hi[0] <= exact.mean_score <= lo_hi[1])(
        _ci95(exact.query_scores[query_rows(1200, 500, 300, seed)], 1200)) for seed in range(400)]
    assert 0.92 <= np.mean(held) <= 0.98
    d = sampled.to_dict()
    assert d["n_queries"] == 300 and d["n_images"] == 1200 and d["score_k"] == 15 and set(d["ci95"]) == {
        "mean_score", "precision_at_k", "knn_accuracy"}


def test_sampled_queries_are_scored_like_the_same_queries_in_the_exact_run(rng):
    labels = list(rng.integers(0, 3, size=80))
    feats = rng.normal(size=(80, 6)).astype(np.float32)
    exact = evaluate_retrieval(feats, labels, "euclidean")
    sampled = evaluate_retrieval(feats, labels, "euclidean", exact_max=50, sample=20, seed=3)
    np.testing.assert_array_equal(sampled.query_scores, exact.query_scores[sampled.queries])
    np.testing.assert_array_equal(sampled.knn_correct, exact.knn_correct[sampled.queries])


def test_figure_text_shows_the_interval_only_when_sampled():
    from cnnviz.scoring import figure_text, figures_note

    exact = {"mean_score": 61.234, "ci95": None, "n_images": 10, "n_queries": 10, "score_k": 15}
    sampled = {**exact, "ci95": {"mean_score": [60.5, 62.0]}, "n_images": 1_000_000, "n_queries": 5000}
    assert figure_text(exact, "mean_score", 1) == "61.2"
    assert figure_text(sampled, "mean_score", 1) == "61.2 ± 0.8"
    assert "every one of the 10 images" in figures_note(exact) and "5,000 of the 1,000,000" in figures_note(sampled)
