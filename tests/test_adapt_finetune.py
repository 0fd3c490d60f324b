"""adapt --method finetune: the last block trained on cached input maps, training rows only, served from the
cache without re-running the network, and the same features through the Keras graph for uploaded queries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cnnviz import adapt as A
from cnnviz import adapt_finetune as F
from cnnviz.cli import main

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(scope="module")
def shop(tiny_folder, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ft") / "shop"
    shutil.copytree(tiny_folder, root)
    return root


def test_finetune_trains_the_block_on_training_rows_and_serves_it_everywhere(shop, capsys, monkeypatch):
    from cnnviz import features, workflows
    from cnnviz.data import images, open_dataset
    from cnnviz.data.images import load_for_model
    from cnnviz.features import extract_features, features_of_images

    seen = {}
    real_fit = F.fit_finetune

    def recording(frozen, maps, y, *args, **kw):
        seen.update(frozen=np.array(frozen), maps=np.array(maps), y=list(y))
        return real_fit(frozen, maps, y, *args, **kw)

    monkeypatch.setattr(F, "fit_finetune", recording)
    assert main(["adapt", "--images", str(shop), "--model", "efficientnet_lite0", "--method", "finetune",
                 "--epochs", "3", "--name", "test+ft", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "finetune" and out["layer"] == "all" and out["epochs"] == 3
    assert out["finetune"]["tap"] == "block6d_out" and out["finetune"]["trained_layers"][0] == "block7a_expand_conv"
    assert out["finetune"]["trained_layers"][-1] == "head_relu"
    assert out["split"] == {**out["split"], "train": 6, "test": 6}
    for when in ("before", "after"):
        assert 0 <= out[when]["mean_score"] <= 100

    # Only training rows reached training: maps and frozen features of held-out images never did.
    ds = open_dataset(images=shop)
    base = workflows.get_model("efficientnet_lite0")
    entry = A.find_entry("test+ft")
    maps = F.block_input_maps(base, ds, "block6d_out")
    assert maps.shape == (12, 7 * 7 * 192)
    train_rows = [ds.ids.index(i) for i in entry["train_ids"]]
    test_rows = [ds.ids.index(i) for i in entry["test_ids"]]
    assert not set(train_rows) & set(test_rows)
    assert seen["maps"].shape == (6, maps.shape[1])
    np.testing.assert_array_equal(seen["maps"], maps[train_rows])
    for r in test_rows:
        assert not (np.abs(seen["maps"] - maps[r]).max(axis=1) == 0).any()
    frozen_taps = list(F.tail_plan(base).frozen_taps)
    frozen = A.stack_layers(extract_features(base, ds, frozen_taps, "max"), frozen_taps)[0]
    assert seen["frozen"].shape == (6, frozen.shape[1]) and frozen_taps[-1] == "block6d_out"

    # The saved block was trained (it differs from the base model's) and reloads from npz arrays.
    ft, meta = A.load_finetuned("test+ft")
    assert meta["tail"]["chain"] == list(F.tail_plan(base).chain)
    i = ft.configs.index(next(c for c in ft.configs if c["name"] == "head_conv"))
    assert not np.allclose(ft.weights[i][0], base.model.get_layer("head_conv").get_weights()[0])

    # Dataset features come from the cached maps through the trained block: no image is decoded or run again.
    def no_images(*a, **k):
        raise AssertionError("the network ran on a dataset image")

    monkeypatch.setattr(images, "load_for_model", no_images)
    monkeypatch.setattr(features, "load_for_model", no_images)
    workflows.get_model.cache_clear()
    loaded = workflows.get_model("test+ft")
    assert loaded.spec.embedding_layer == "adapted"
    feats = extract_features(loaded, ds, "embedding")["adapted"]
    np.testing.assert_allclose(feats, ft(frozen, maps), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
    monkeypatch.undo()

    # An uploaded query goes through the full Keras graph (base -> trained block -> pooling -> projection).
    pixels = np.stack([load_for_model(ds.items[r].path, 224) for r in (test_rows[0], train_rows[0])])
    graph = features_of_images(loaded, pixels, ["adapted"])["adapted"]
    np.testing.assert_allclose(graph, feats[[test_rows[0], train_rows[0]]], atol=1e-3)
    assert any(layer.name == "adapted_head_conv" for layer in loaded.model.layers)

    # Searching with it from the CLI.
    assert main(["search", "--images", str(shop), "--model", "test+ft", "--query", ds.ids[0], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"]


def test_finetune_refuses_another_layer_choice(shop, capsys):
    assert main(["adapt", "--images", str(shop), "--model", "efficientnet_lite0", "--method", "finetune",
                 "--layer", "embedding"]) == 2
    assert "finetune reads all" in capsys.readouterr().err


def test_a_last_block_that_is_not_a_chain_is_refused():
    import keras

    x0 = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 1, name="a")(x0)
    b = keras.layers.Conv2D(4, 1, name="b")(a)
    c = keras.layers.Add(name="c")([a, b])
    model = keras.Model(x0, c)
    loaded = SimpleNamespace(spec=SimpleNamespace(name="toy", layers=("a", "b", "c")), model=model)
    with pytest.raises(F.FinetuneError, match="Add"):
        F.tail_plan(loaded)
    d = keras.layers.ReLU(6.0, name="d")(b)
    ok = SimpleNamespace(spec=SimpleNamespace(name="toy", layers=("a", "b", "d")), model=keras.Model(x0, d))
    plan = F.tail_plan(ok)
    assert plan.tap == "a" and plan.chain == ("b", "d") and plan.tail_taps == ("b", "d") and plan.frozen_taps == ("a",)


def test_chain_in_tensorflow_matches_keras_layers():
    """The block as TensorFlow ops (training, cached path) computes what its Keras copy (queries) computes."""
    import keras

    rng = np.random.default_rng(0)
    x0 = keras.Input((5, 5, 6))
    h = keras.layers.Conv2D(8, 1, use_bias=False, name="e")(x0)
    h = keras.layers.BatchNormalization(epsilon=1e-3, name="e_bn")(h)
    h = keras.layers.ReLU(6.0, name="e_relu")(h)
    h = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False, name="dw")(h)
    h = keras.layers.BatchNormalization(name="dw_bn")(h)
    model = keras.Model(x0, h)
    for layer in model.layers[1:]:
        layer.set_weights([rng.normal(0.5, 0.3, w.shape).astype(np.float32) ** 2 for w in layer.get_weights()])
    loaded = SimpleNamespace(spec=SimpleNamespace(name="toy", layers=("e", "e_relu", "dw_bn")), model=model)
    plan = F.tail_plan(loaded)
    configs = F.chain_configs(loaded, plan)
    weights = [model.get_layer(n).get_weights() for n in plan.chain]
    maps = rng.normal(0, 1, (3, 5, 5, 8)).astype(np.float32)  # the output of "e", the block's input
    ft = F.FineTuned(configs, weights, list(plan.tail_taps), "max", (5, 5, 8), None, plan.tap)
    ours = ft.tail_features(maps.reshape(3, -1))
    h, taps = maps, []
    for n in plan.chain:  # the model's own layers, called one by one (inference mode)
        h = np.asarray(model.get_layer(n)(h))
        if n in plan.tail_taps:
            taps.append(h.max(axis=(1, 2)))
    ref = np.hstack(taps)
    assert ours.shape == (3, 8 + 8)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)
    x = keras.Input((5, 5, 8))
    copy = keras.Model(x, list(F.keras_chain(x, ft).values()))
    np.testing.assert_allclose(np.hstack([o.max(axis=(1, 2)) for o in copy.predict_on_batch(maps)]), ref, atol=1e-5)


def test_adapt_page_offers_finetune():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/adapt.py").run()
    assert "finetune" in at.selectbox(key="adapt.method").options
    at.selectbox(key="adapt.method").set_value("finetune").run()
    assert not at.exception
    assert at.number_input(key="adapt.epochs.finetune").value == A.FINETUNE_EPOCHS
    assert not next(b for b in at.button if b.label == "Train").disabled
    at.selectbox(key="adapt.layer").set_value("avg_pool").run()
    assert any("finetune reads all" in w.value for w in at.warning)
    assert next(b for b in at.button if b.label == "Train").disabled
