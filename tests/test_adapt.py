"""Adapt: the split, training only on training images, the saved model as a model, the JSON, the page."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from cnnviz import adapt as A
from cnnviz.cli import main

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def test_split_is_disjoint_stratified_and_seeded():
    labels = ["a"] * 10 + ["b"] * 6 + ["c"] * 1
    split = A.stratified_split(labels, 0.5, seed=0)
    assert np.intersect1d(split.train, split.test).size == 0
    assert sorted(np.concatenate([split.train, split.test]).tolist()) == list(range(17))
    lab = np.array(labels)
    assert {c: int((lab[split.test] == c).sum()) for c in "abc"} == {"a": 5, "b": 3, "c": 1}  # half of each class
    assert {c: int((lab[split.train] == c).sum()) for c in "abc"} == {"a": 5, "b": 3, "c": 0}  # c: unseen in training
    again = A.stratified_split(labels, 0.5, seed=0)
    assert again.test.tolist() == split.test.tolist()
    assert A.stratified_split(labels, 0.5, seed=1).test.tolist() != split.test.tolist()
    assert len(A.stratified_split(labels, 0.3, seed=0).test) == 3 + 2 + 0  # below 0.5 a lone image trains
    with pytest.raises(A.AdaptError):
        A.stratified_split(labels, 1.0)
    with pytest.raises(AssertionError, match="held-out image is in the training split"):
        A.Split(np.array([0, 1]), np.array([1, 2])).check_disjoint()


def _learnable(n_per_class=30, classes=4, seed=0):
    """Class signal in 4 weak dimensions, buried under 60 dimensions of large shared noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class).astype(str)
    centres = rng.normal(0, 2.0, (classes, 4))
    signal = centres[y.astype(int)] + rng.normal(0, 0.3, (len(y), 4))
    noise = rng.normal(0, 4.0, (len(y), 60)) + 10.0
    return np.hstack([signal, noise]).astype(np.float32), y


@pytest.mark.parametrize("method", ["lda", "linear-supcon", "mlp-proxy", "linear-triplet"])
def test_adapting_a_learnable_signal_raises_the_held_out_score(method):
    x, y = _learnable()
    split = A.stratified_split(y, 0.5, seed=0)
    before = A.held_out_scores(x[split.test], y[split.test])["mean_score"]
    projection, history = A.fit(x[split.train], y[split.train], method, 60, seed=0)
    after = A.held_out_scores(projection(x[split.test]), y[split.test])["mean_score"]
    assert after > before + 15, (before, after)
    if method != "lda":
        assert len(history) == 60 and history[-1] < history[0]  # the loss went down
    out = projection(x[:5])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    same = A.Projection.from_arrays(projection.to_arrays())
    np.testing.assert_array_equal(same(x[:5]), out)


@pytest.fixture(scope="module")
def labelled_folder(tiny_folder, tmp_path_factory) -> Path:
    """tiny_folder (3 classes × 4) plus a class of one image: held out, so its label is unseen in training."""
    root = tmp_path_factory.mktemp("adapt") / "shop"
    shutil.copytree(tiny_folder, root)
    (root / "lonely").mkdir()
    shutil.copy(next((tiny_folder / "fruit").iterdir()), root / "lonely" / "one.jpg")
    return root


def _adapt_json(capsys, folder: Path, *extra: str) -> dict:
    assert main(["adapt", "--images", str(folder), "--model", "efficientnet_lite0", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_adapt_json_reload_and_model_everywhere(labelled_folder, capsys, monkeypatch):
    from cnnviz import workflows
    from cnnviz.data import open_dataset
    from cnnviz.features import extract_features, features_of_images
    from cnnviz.data.images import load_for_model

    seen = {}
    real_fit = A.fit

    def recording_fit(x_train, y_train, *args, **kw):
        seen["x_train"] = np.array(x_train)
        return real_fit(x_train, y_train, *args, **kw)

    monkeypatch.setattr(A, "fit", recording_fit)
    out = _adapt_json(capsys, labelled_folder, "--method", "linear-supcon", "--epochs", "5", "--name", "test+shop")
    assert {"name", "model", "layer", "method", "split", "before", "after", "seconds", "epochs"} <= set(out)
    assert out["name"] == "test+shop" and out["model"] == "efficientnet_lite0" and out["layer"] == "all"
    assert out["layers"] == list(workflows.get_model("efficientnet_lite0").spec.layers) and out["before_layer"] == "avg_pool"
    assert out["split"]["train"] + out["split"]["test"] == 13 and out["split"]["test"] == 7
    assert out["split"]["test_unseen_labels"] == 1  # the one-image class
    for when in ("before", "after"):
        assert set(out[when]) == {"mean_score", "precision_at_k", "knn_accuracy"}
        assert 0 <= out[when]["mean_score"] <= 100
    assert out["epochs"] == 5 and out["seconds"] > 0

    # Held-out images never entered training: no training row equals a held-out image's features.
    ds = open_dataset(images=labelled_folder)
    assert out["pooling"] == A.DEFAULT_POOLING
    base = A.stack_layers(extract_features(workflows.get_model("efficientnet_lite0"), ds, out["layers"], out["pooling"]),
                          out["layers"])[0]
    entry = A.find_entry("test+shop")
    test_rows = [ds.ids.index(i) for i in entry["test_ids"]]
    assert seen["x_train"].shape == (6, base.shape[1]) and not set(entry["train_ids"]) & set(entry["test_ids"])
    for r in test_rows:
        assert not (np.abs(seen["x_train"] - base[r]).max(axis=1) == 0).any()

    # Saved under the cache; a fresh build gives the same features, and the Keras graph agrees for a query.
    assert "test+shop" in [r["name"] for r in workflows.describe_models()]
    assert main(["models", "--names-only"]) == 0 and "test+shop" in capsys.readouterr().out.split()
    projection, _ = A.load_entry("test+shop")
    workflows.get_model.cache_clear()
    loaded = workflows.get_model("test+shop")
    assert loaded.spec.embedding_layer == "adapted" and loaded.spec.layers == workflows.get_model("efficientnet_lite0").spec.layers
    feats = extract_features(loaded, ds, "embedding")["adapted"]
    np.testing.assert_allclose(feats, projection(base), atol=1e-6)
    workflows.get_model.cache_clear()
    again = extract_features(workflows.get_model("test+shop"), ds, "embedding")["adapted"]
    np.testing.assert_array_equal(again, feats)
    pixels = load_for_model(ds.items[0].path, 224)[None]
    np.testing.assert_allclose(features_of_images(loaded, pixels, ["adapted"])["adapted"][0], feats[0], atol=1e-3)

    # Searching with it through the CLI (no base features recomputed: they are cached).
    assert main(["search", "--images", str(labelled_folder), "--model", "test+shop", "--query", ds.ids[0], "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["results"] and res["query"]["id"] == ds.ids[0]


def test_adapted_model_on_chosen_layers_with_avg_pooling(labelled_folder, capsys):
    """A comma list of layers, avg-pooled (the default, tested above, is max): the Keras graph (uploaded queries) matches the cached-features path,
    and the adapted features are the same whatever pooling a page asks for (its inputs are pooled as trained)."""
    from cnnviz import workflows
    from cnnviz.data import open_dataset
    from cnnviz.data.images import load_for_model
    from cnnviz.features import extract_features, features_of_images

    out = _adapt_json(capsys, labelled_folder, "--method", "lda", "--layer", "block6d_out,block7a_out",
                      "--pooling", "avg", "--name", "test+shopavg")
    assert out["layer"] == "block6d_out,block7a_out" and out["pooling"] == "avg" and out["before_layer"] == "avg_pool"
    ds = open_dataset(images=labelled_folder)
    workflows.get_model.cache_clear()
    loaded = workflows.get_model("test+shopavg")
    base = extract_features(workflows.get_model("efficientnet_lite0"), ds, out["layers"], "avg")
    projection, _ = A.load_entry("test+shopavg")
    feats = extract_features(loaded, ds, "embedding")["adapted"]
    np.testing.assert_allclose(feats, projection(A.stack_layers(base, out["layers"])[0]), atol=1e-6)
    np.testing.assert_array_equal(extract_features(loaded, ds, ["adapted"], "max")["adapted"], feats)
    pixels = np.stack([load_for_model(ds.items[i].path, 224) for i in (0, 5)])
    np.testing.assert_allclose(features_of_images(loaded, pixels, ["adapted"])["adapted"], feats[[0, 5]], atol=1e-3)


def test_input_layers_and_stacking():
    from cnnviz.models.registry import get_model_spec

    spec = get_model_spec("efficientnet_lite0")
    assert A.input_layers(spec, "all") == list(spec.layers)
    assert A.input_layers(spec, "embedding") == ["avg_pool"]
    assert A.input_layers(spec, "block6d_out,block7a_out") == ["block6d_out", "block7a_out"]
    with pytest.raises(Exception, match="no layer"):
        A.input_layers(spec, "nope")
    feats = {"a": np.ones((4, 2)), "b": np.zeros((4, 3))}
    x, widths = A.stack_layers(feats, ["a", "b"], np.array([1, 3]))
    assert x.shape == (2, 5) and widths == [2, 3] and x.dtype == np.float32


def test_layer_widths_weigh_each_layer_the_same():
    rng = np.random.default_rng(0)
    x = np.hstack([rng.normal(0, 1, (50, 4)), rng.normal(0, 1, (50, 100))])
    mean, scale = A._standardizer(x, [4, 100])
    z = (x - mean) / scale
    assert np.isclose((z[:, :4] ** 2).sum(axis=1).mean(), (z[:, 4:] ** 2).sum(axis=1).mean(), rtol=0.05)
    with pytest.raises(ValueError):
        A._standardizer(x, [4, 99])


def test_lda_weight_is_chosen_on_the_training_rows_only(monkeypatch):
    """The LDA blend weight comes from a 2-fold split of the rows fit() is given (the training split): every
    row the weight search fits or scores is a training row; and a fixed weight of 0 is the PCA view alone."""
    x, y = _learnable()
    split = A.stratified_split(y, 0.5, seed=0)
    x_train, y_train = x[split.train], y[split.train]
    seen = []
    real_parts = A._lda_parts
    monkeypatch.setattr(A, "_lda_parts", lambda xs, ys, b: (seen.append(np.array(xs)), real_parts(xs, ys, b))[1])
    weight = A.choose_lda_weight(x_train, y_train, None, seed=0)
    assert weight in A.LDA_WEIGHTS and weight > 0  # the class signal is learnable: LDA is used
    assert len(seen) == 2 and sum(len(s) for s in seen) == len(x_train)
    train_rows = {r.tobytes() for r in x_train}
    held_out = {r.tobytes() for r in x[split.test]}
    assert all(r.tobytes() in train_rows and r.tobytes() not in held_out for s in seen for r in s)
    pca_only = A.fit_lda(x_train, y_train, weight=0.0)
    z = (x_train - x_train.mean(axis=0)) / x_train.std(axis=0)
    cos = lambda a: (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (a / np.linalg.norm(a, axis=1, keepdims=True)).T  # noqa: E731
    np.testing.assert_allclose(cos(pca_only(x_train)), cos(z), atol=1e-4)


def test_adapt_refuses_bad_input(labelled_folder, tiny_folder, capsys, tmp_path):
    assert main(["adapt", "--images", str(labelled_folder), "--model", "efficientnet_lite0", "--name", "efficientnet_lite1"]) == 2
    assert "registry model" in capsys.readouterr().err
    assert main(["adapt", "--images", str(labelled_folder), "--model", "efficientnet_lite0", "--holdout", "1.5"]) == 2
    assert "--holdout" in capsys.readouterr().err
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in list((tiny_folder / "birds").iterdir())[:3]:
        shutil.copy(p, flat / p.name)
    assert main(["adapt", "--images", str(flat), "--model", "efficientnet_lite0"]) == 2
    assert "needs labels" in capsys.readouterr().err


def test_adapt_page_trains_and_shows_before_after():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page("app_pages/adapt.py").run()
    assert not at.exception
    assert any("press **Train**" in i.value for i in at.info) or at.get("metric")
    at.selectbox(key="adapt.method").set_value("linear-proxy").run()
    at.number_input(key="adapt.epochs").set_value(15).run()
    at.text_input(key="adapt.name.efficientnet_lite0.stamps").set_value("apptest+stamps").run()
    next(b for b in at.button if b.label == "Train").click().run()
    deadline = time.time() + 240
    while "adapt.job" in at.session_state and time.time() < deadline:
        time.sleep(1)
        at.run()
    assert not at.exception and not at.error
    assert at.session_state["adapt.result"]["epochs"] == 15
    table = at.dataframe[0].value
    assert list(table["embedding"].str.split(":").str[0]) == ["before", "after"]
    assert any("held-out images" in c.value and "seed 0" in c.value for c in at.caption)
    assert any(m.label == "Held-out mean search score" for m in at.metric)
    assert any("**before** · score" in m.value for m in at.markdown) and any("**after** · score" in m.value for m in at.markdown)
    first = at.selectbox(key="adapt.query").value
    at.selectbox(key="adapt.query").set_value(at.selectbox(key="adapt.query").options[3]).run()
    assert not at.exception and at.selectbox(key="adapt.query").value != first
    # The new model is offered in the sidebar and searches on Home.
    assert "apptest+stamps" in at.selectbox(key="cnnviz.model").options
    at.selectbox(key="cnnviz.model").set_value("apptest+stamps").run()
    at.session_state["cnnviz.query"] = "birds/magpie.jpg"
    at.switch_page("app_pages/home.py").run()
    assert not at.exception
    assert any("Most similar to birds/magpie.jpg" in s.value for s in at.subheader)
    assert any(m.label == "Search score" for m in at.metric)
