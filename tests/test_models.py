import numpy as np
import pytest

from cnnviz.errors import UnknownNameError, WeightsUnavailableError
from cnnviz.features import layer_infos
from cnnviz.models import MODELS, get_model_spec, list_models
from cnnviz.models.inference import top_k
from cnnviz.models.labels import imagenet_labels
from cnnviz.data.images import load_for_model
from cnnviz.workflows import get_model

OFFLINE = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2_tv", "vgg16_conv"]
CLASSIFIERS = [n for n in OFFLINE if MODELS[n].has_classifier]
CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def test_registry_lookup_and_filters():
    assert list_models("efficientnet_lite*") == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    spec = get_model_spec("resnet50")
    assert spec == MODELS["resnet50"] and spec is not MODELS["resnet50"]
    with pytest.raises(UnknownNameError, match="efficientnet_lite0"):
        get_model_spec("resnet5O")


@pytest.mark.parametrize("name", list_models())
def test_each_model_has_8_layers_from_early_to_late(name):
    """Builds every architecture (random weights where none are here) and checks its taps."""
    spec = get_model_spec(name)
    assert len(spec.layers) == 8 and len(set(spec.layers)) == 8
    loaded = get_model(name, require_weights=False)
    infos = layer_infos(loaded)
    assert [i.name for i in infos] == list(spec.all_layers)
    spatial = [i.shape[0] for i in infos[:8] if len(i.shape) == 3]
    assert spatial == sorted(spatial, reverse=True), "layers must run from early (large maps) to late"
    assert infos[-1].pooled_dim >= 512
    if spec.published_params_m:
        params = loaded.model.count_params()
        if spec.builder != "vgg16_onnx":
            assert abs(params / 1e6 - spec.published_params_m) / spec.published_params_m < 0.06


def test_vgg16_conv_has_exactly_keras_vgg16_conv_params():
    assert get_model("vgg16_conv").model.count_params() == 14_714_688


def test_imagenet_labels():
    labels = imagenet_labels()
    assert len(labels) == 1000 and labels[ESPRESSO] == "espresso" and "tabby" in labels[281]


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_predictions_on_real_photos(name, photos):
    loaded = get_model(name)
    assert loaded.trained
    size = loaded.spec.input_size
    batch = np.stack([load_for_model(photos[p], size) for p in ("chelsea", "coffee")])
    from cnnviz.models.inference import predict_batches

    probs = predict_batches(loaded, batch)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    chelsea, coffee = top_k(probs, 5)
    assert {p.class_id for p in chelsea[:3]} & CAT_CLASSES, [p.label for p in chelsea]
    assert coffee[0].class_id == ESPRESSO and coffee[0].label == "espresso"
    assert coffee[0].probability > 0.5


def test_features_only_model_refuses_to_predict(photos):
    from cnnviz.models.inference import predict_batches

    loaded = get_model("vgg16_conv")
    with pytest.raises(WeightsUnavailableError, match="no ImageNet classifier"):
        predict_batches(loaded, load_for_model(photos["coffee"], 224)[None])


def test_keras_model_without_weights_is_refused_for_semantic_tasks(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("CNNVIZ_WEIGHTS_DIR", raising=False)
    from cnnviz.models.build import build_model

    with pytest.raises(WeightsUnavailableError, match="CNNVIZ_WEIGHTS_DIR"):
        build_model("mobilenet_v2")
    random = build_model("mobilenet_v2", require_weights=False)
    assert random.weights == "random" and not random.trained


def test_converted_weights_are_cached(isolated_cache):
    from cnnviz.models.build import build_model

    first = build_model("mobilenet_v2_tv")
    files = list((isolated_cache / "weights").glob("*.weights.h5"))
    assert len(files) == 1
    second = build_model("mobilenet_v2_tv")
    for a, b in zip(first.model.weights, second.model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_keras_weights_found_in_weights_dir(monkeypatch, tmp_path):
    from cnnviz.models.weights import keras_weights_path, weights_status

    spec = get_model_spec("resnet50")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("CNNVIZ_WEIGHTS_DIR", str(tmp_path))
    assert weights_status(spec) == "missing"
    _write_h5(tmp_path / spec.keras_weights_file)
    assert weights_status(spec) == "available" and keras_weights_path(spec).parent == tmp_path


def _write_h5(path):
    """A minimal readable Keras-style HDF5 weights file (layer list only)."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"conv1"]
        f.create_group("conv1")
    return path


def test_a_damaged_keras_weights_file_is_unreadable_not_available(monkeypatch, tmp_path):
    """A 2-byte file used to be "available" and then silently built with random weights."""
    from cnnviz.models.build import build_model
    from cnnviz.models.weights import weights_status

    spec = get_model_spec("mobilenet_v2")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("CNNVIZ_WEIGHTS_DIR", str(tmp_path))
    bad = tmp_path / spec.keras_weights_file
    bad.write_bytes(b"h5")
    assert weights_status(spec) == "unreadable"
    with pytest.raises(WeightsUnavailableError, match=spec.keras_weights_file):
        build_model("mobilenet_v2")
    with pytest.raises(WeightsUnavailableError, match="unreadable"):
        build_model("mobilenet_v2", require_weights=False)  # not random weights either: the file is named


def test_a_keras_file_that_reads_but_does_not_fit_names_the_file(monkeypatch, tmp_path):
    """A readable HDF5 that is not this model's weights fails to load: an error naming it, not random weights."""
    from cnnviz.models.build import build_model

    spec = get_model_spec("mobilenet_v2")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("CNNVIZ_WEIGHTS_DIR", str(tmp_path))
    _write_h5(tmp_path / spec.keras_weights_file)
    with pytest.raises(WeightsUnavailableError, match=f"{spec.keras_weights_file}.*does not load"):
        build_model("mobilenet_v2")


def test_damaged_converted_weights_are_unreadable(monkeypatch, tmp_path):
    from cnnviz.models import weights

    spec = get_model_spec("efficientnet_lite0")
    bad = tmp_path / "lite0.pth"
    bad.write_bytes(b"\x80\x02")
    monkeypatch.setattr(weights, "packaged_weights_path", lambda s: bad)
    assert weights.weights_status(spec) == "unreadable"
    assert weights.weights_status(get_model_spec("mobilenet_v2_tv")) == "unreadable"


def test_built_model_carries_its_weight_file_sha256():
    import hashlib

    from cnnviz.models.weights import packaged_weights_path, weights_digest

    loaded = get_model("efficientnet_lite0")
    path = packaged_weights_path(loaded.spec)
    assert loaded.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest() == weights_digest(path)


def test_model_identity_covers_weights_converter_preparation_and_libraries(monkeypatch):
    """Changing the weights file, the converter, image preparation or Pillow must change the identity."""
    from cnnviz.data import images
    from cnnviz.models import build
    from cnnviz.models.build import LoadedModel, model_identity

    spec = get_model_spec("efficientnet_lite0")
    a, b = LoadedModel(spec, None, "imagenet", "a" * 64), LoadedModel(spec, None, "imagenet", "b" * 64)
    base = model_identity(a)
    assert base != model_identity(b)  # same label "imagenet", different file
    assert base["libraries"]["pillow"]
    monkeypatch.setattr(build, "CONVERTER_VERSION", build.CONVERTER_VERSION + 1)
    assert model_identity(a) != base
    monkeypatch.undo()
    monkeypatch.setattr(images, "IMAGE_PREP_VERSION", images.IMAGE_PREP_VERSION + 1)
    assert model_identity(a) != base
    monkeypatch.undo()
    monkeypatch.setattr(build, "library_versions", lambda: {**base["libraries"], "pillow": "0.0"})
    assert model_identity(a) != base


def test_random_weights_never_share_an_identity():
    from cnnviz.models.build import build_model, model_identity

    one, two = build_model("mobilenet_v2", require_weights=False), build_model("mobilenet_v2", require_weights=False)
    assert model_identity(one) != model_identity(two)


def test_model_cache_is_bounded_and_extractors_go_with_their_model():
    """workflows.get_model is the one model cache (bounded); extractors live on the model, not in a global dict."""
    from cnnviz import features, workflows
    from cnnviz.features import get_extractor

    assert workflows._built.cache_info().maxsize == workflows.MAX_MODELS
    assert not hasattr(features, "_EXTRACTORS")
    loaded = get_model("efficientnet_lite0")
    ex = get_extractor(loaded, ["avg_pool"])
    assert get_extractor(loaded, ["avg_pool"]) is ex and ex in loaded.derived.values()
