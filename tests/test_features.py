import numpy as np
import pytest

from cnnviz import cache
from cnnviz.data import scan_folder
from cnnviz.errors import UnknownNameError
from cnnviz.features import FeatureExtractor, extract_features, resolve_layers
from cnnviz.models import get_model_spec
from cnnviz.models.layers import GridPool
from cnnviz.workflows import get_model


def test_resolve_layers():
    spec = get_model_spec("efficientnet_lite0")
    assert resolve_layers(spec) == list(spec.all_layers)
    assert resolve_layers(spec, "embedding") == ["avg_pool"]
    assert resolve_layers(spec, [0, -1]) == ["stem_relu", "avg_pool"]
    assert resolve_layers(spec, "stem_relu,head_relu") == ["stem_relu", "head_relu"]
    with pytest.raises(UnknownNameError, match="bogus, 99"):
        resolve_layers(spec, ["bogus", 99])


def test_grid_pool_matches_hand_computation():
    x = np.arange(2 * 3 * 3 * 1, dtype=np.float32).reshape(2, 3, 3, 1)
    out = np.asarray(GridPool(2)(x))
    # 3×3 map split into rows [0,2) [1,3) and cols [0,2) [1,3)
    want = [x[0, 0:2, 0:2].mean(), x[0, 0:2, 1:3].mean(), x[0, 1:3, 0:2].mean(), x[0, 1:3, 1:3].mean()]
    np.testing.assert_allclose(out[0], want)


def test_one_forward_pass_per_batch_for_all_layers(tiny_folder, isolated_cache, monkeypatch):
    loaded = get_model("efficientnet_lite0")
    ds = scan_folder(tiny_folder)
    calls = []
    original = FeatureExtractor.__call__
    monkeypatch.setattr(FeatureExtractor, "__call__", lambda self, b: calls.append(len(b)) or original(self, b))
    feats = extract_features(loaded, ds, "all", batch_size=5)
    assert calls == [5, 5, 2]  # 12 images, batch 5: three passes for all 9 layers together
    assert list(feats) == list(loaded.spec.all_layers)
    for f in feats.values():
        assert f.dtype == np.float32 and f.shape[0] == 12 and np.isfinite(f).all()
    # Second call: every layer from the disk cache, no forward pass.
    calls.clear()
    again = extract_features(loaded, ds, "all")
    assert calls == []
    for n in feats:
        np.testing.assert_array_equal(feats[n], again[n])


def test_pooling_sizes(tiny_folder, isolated_cache):
    loaded = get_model("efficientnet_lite0")
    ds = scan_folder(tiny_folder)
    avg = extract_features(loaded, ds, ["block6d_out"], "avg")["block6d_out"]
    grid = extract_features(loaded, ds, ["block6d_out"], "grid2")["block6d_out"]
    mx = extract_features(loaded, ds, ["block6d_out"], "max")["block6d_out"]
    assert avg.shape[1] == 192 and grid.shape[1] == 4 * 192 and mx.shape[1] == 192
    assert np.all(mx >= avg - 1e-5)


def test_batched_equals_single_image(tiny_folder, isolated_cache):
    loaded = get_model("efficientnet_lite0")
    ds = scan_folder(tiny_folder)
    batched = extract_features(loaded, ds, ["avg_pool"], batch_size=32)["avg_pool"]
    from cnnviz.features import features_of_images, load_dataset_images

    single = features_of_images(loaded, load_dataset_images(ds, [3], 224), ["avg_pool"])["avg_pool"]
    np.testing.assert_allclose(single[0], batched[3], rtol=1e-4, atol=1e-5)


def test_cache_key_changes_with_settings():
    a = cache.make_key("features", dataset="d", layer="x", pooling="avg")
    assert a == cache.make_key("features", pooling="avg", layer="x", dataset="d")
    assert a != cache.make_key("features", dataset="d", layer="x", pooling="max")


def test_feature_key_is_the_weights_not_their_label(monkeypatch):
    """Two different weight files labelled "imagenet" used to share cached features (and so ANN indexes)."""
    from cnnviz.features import feature_key
    from cnnviz.models.build import LoadedModel

    spec = get_model_spec("efficientnet_lite0")
    a, b = LoadedModel(spec, None, "imagenet", "a" * 64), LoadedModel(spec, None, "imagenet", "b" * 64)
    assert feature_key("d", a, "avg_pool", "avg") == feature_key("d", a, "avg_pool", "avg")
    assert feature_key("d", a, "avg_pool", "avg") != feature_key("d", b, "avg_pool", "avg")
    import PIL

    before = feature_key("d", a, "avg_pool", "avg")
    from cnnviz.models import build

    monkeypatch.setattr(build, "library_versions", lambda: {"pillow": PIL.__version__ + ".post1"})
    assert feature_key("d", a, "avg_pool", "avg") != before


def test_attribution_and_featureviz_keys_use_the_model_identity():
    from cnnviz import featureviz
    from cnnviz.attribution.explain import FaithfulnessConfig, attribution_key, make_config
    from cnnviz.featureviz import ActMaxConfig
    from cnnviz.models.build import LoadedModel

    spec = get_model_spec("efficientnet_lite0")
    a, b = LoadedModel(spec, None, "imagenet", "a" * 64), LoadedModel(spec, None, "imagenet", "b" * 64)
    assert featureviz._key(a, "x", 0, ActMaxConfig()) != featureviz._key(b, "x", 0, ActMaxConfig())
    image, config, faith = np.zeros((4, 4, 3), np.float32), make_config("gradcam"), FaithfulnessConfig()
    assert attribution_key(a, image, config, 1, faith) == attribution_key(a, image, config, 1, faith)
    assert attribution_key(a, image, config, 1, faith) != attribution_key(b, image, config, 1, faith)


def test_corrupt_cache_entry_is_discarded(isolated_cache):
    arr = {"features": np.ones((3, 2), np.float32)}
    path = cache.save_arrays("features", "k1", arr, {})
    assert cache.load_arrays("features", "k1")[0]["features"].shape == (3, 2)
    path.write_bytes(path.read_bytes()[:20])
    assert cache.load_arrays("features", "k1") is None
    assert not path.exists()


def test_failed_write_leaves_no_file(isolated_cache):
    target = cache.entry_dir("features") / "x.npz"
    with pytest.raises(RuntimeError):
        with cache.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(target.parent.iterdir()) == []
