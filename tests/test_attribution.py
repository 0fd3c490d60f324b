"""Attribution methods on real photos: shapes, ranges, faithfulness, caching, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnviz.attribution import (
    METHODS,
    FaithfulnessConfig,
    explain,
    faithfulness,
    make_config,
)
from cnnviz.attribution.base import positive_part
from cnnviz.attribution.faithfulness import _sequence, auc
from cnnviz.attribution.occlusion import patch_origins
from cnnviz.cli import main
from cnnviz.data.images import load_for_model
from cnnviz.errors import CnnvizError, UnknownNameError, WeightsUnavailableError
from cnnviz.workflows import get_model

MODEL = "efficientnet_lite0"
QUICK = FaithfulnessConfig(steps=8)
SMALL = {"samples": 4, "max_evals": 40, "max_channels": 16}  # smoothgrad/LIME samples, SHAP evals, Score-CAM channels


@pytest.fixture(scope="module")
def lite0():
    return get_model(MODEL)


@pytest.fixture(scope="module")
def chelsea(photos, lite0):
    return load_for_model(photos["chelsea"], lite0.spec.input_size)


TOP1 = {"chelsea": ("tiger cat", "tabby", "Egyptian Mau"), "coffee": ("espresso",)}


@pytest.mark.parametrize("photo", list(TOP1))
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_gives_a_finite_nonconstant_map_of_the_image_shape(lite0, photos, photo, method):
    image = load_for_model(photos[photo], lite0.spec.input_size)
    a = explain(lite0, image, method, params=dict(SMALL, patch=56, stride=56), faith=QUICK)
    assert a.heatmap.shape == image.shape[:2]
    assert np.isfinite(a.heatmap).all()
    assert a.heatmap.min() >= 0 and a.heatmap.max() <= 1
    assert a.heatmap.std() > 1e-3
    assert a.target.label in TOP1[photo]  # top-1 by default
    assert 0 <= a.faithfulness.deletion_auc <= 1 and 0 <= a.faithfulness.insertion_auc <= 1
    assert len(a.faithfulness.deletion_curve) == QUICK.steps + 1
    if method == "lime":
        assert a.extras["boundaries"].shape == image.shape and a.extras["boundaries"].dtype == np.uint8


def test_gradcam_on_chelsea_is_faithful(lite0, chelsea):
    faith = FaithfulnessConfig(steps=32)
    a = explain(lite0, chelsea, "gradcam", faith=faith)
    rand = faithfulness(lite0, chelsea, np.random.default_rng(0).random(a.heatmap.shape), a.target.class_id, faith)
    assert a.faithfulness.insertion_auc > a.faithfulness.deletion_auc
    assert a.faithfulness.insertion_auc > rand.insertion_auc + 0.05


def test_target_can_be_changed(lite0, chelsea):
    top = explain(lite0, chelsea, "gradcam", faith=QUICK)
    other = explain(lite0, chelsea, "gradcam", target=967, faith=QUICK)  # espresso
    assert other.target.class_id == 967 and other.target.label == "espresso"
    assert other.target.probability < top.target.probability
    assert not np.allclose(other.heatmap, top.heatmap)


def test_results_are_cached_on_disk(lite0, chelsea, isolated_cache, monkeypatch):
    first = explain(lite0, chelsea, "gradcam", faith=QUICK)
    from cnnviz.attribution.base import Attributor

    monkeypatch.setattr(Attributor, "with_extras", lambda *a, **k: pytest.fail("recomputed a cached result"))
    again = explain(lite0, chelsea, "gradcam", faith=QUICK)
    np.testing.assert_array_equal(first.heatmap, again.heatmap)
    assert again.seconds == first.seconds
    assert list((isolated_cache / "attribution").glob("*.npz"))


def test_cam_layer_is_selectable_and_checked(lite0, chelsea):
    late = explain(lite0, chelsea, "gradcam", params={"layer": "head_relu"}, faith=QUICK)
    early = explain(lite0, chelsea, "gradcam", params={"layer": "block4c_out"}, faith=QUICK)
    assert not np.allclose(late.heatmap, early.heatmap)
    with pytest.raises(UnknownNameError, match="no spatial layer"):
        explain(lite0, chelsea, "gradcam", params={"layer": "avg_pool"}, faith=QUICK)


def test_bad_requests_are_refused(lite0, chelsea):
    with pytest.raises(UnknownNameError, match="unknown method"):
        make_config("magic")
    with pytest.raises(UnknownNameError, match="target class"):
        explain(lite0, chelsea, "saliency", target=1000, faith=QUICK)
    with pytest.raises(CnnvizError, match="max_evals must be at least"):
        make_config("shap", max_evals=5)
    with pytest.raises(WeightsUnavailableError, match="no ImageNet classifier"):
        explain(get_model("vgg16_conv"), chelsea, "gradcam", faith=QUICK)


def test_faithfulness_curves_follow_the_heatmap_order(lite0, chelsea):
    start, finish = np.zeros((4, 4, 3), np.float32), np.ones((4, 4, 3), np.float32)
    order = np.array([5, 0, 15, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14])
    seq = _sequence(start, finish, order, steps=4)
    assert seq.shape == (5, 4, 4, 3)
    np.testing.assert_array_equal(seq[0], start)
    np.testing.assert_array_equal(seq[-1], finish)
    assert seq[1].reshape(-1, 3)[[5, 0, 15, 1], 0].tolist() == [1, 1, 1, 1] and seq[1].sum() == 4 * 3
    assert auc(np.array([0.5, 0.5, 0.5])) == pytest.approx(0.5)
    assert auc(np.array([1.0, 0.0])) == pytest.approx(0.5)


def test_positive_part_and_occlusion_tiling():
    maps = positive_part(np.array([[[-1.0, 0.5], [2.0, 0.0]], [[-3.0, -1.0], [-2.0, -1.0]]]))
    np.testing.assert_allclose(maps[0], [[0, 0.25], [1, 0]])
    np.testing.assert_allclose(maps[1], [[0, 1], [0.5, 1]])  # all negative: min–max
    assert patch_origins(224, 32, 16)[-1] == 192 and patch_origins(260, 56, 56) == [0, 56, 112, 168, 204]


def test_cli_attribute_json_and_png(capsys, photos, tmp_path):
    out = tmp_path / "overlay.png"
    code = main(["attribute", str(photos["chelsea"]), "--model", MODEL, "--method", "gradcam", "--auc-steps", "8",
                 "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(captured.out)
    assert {"model", "method", "target", "seconds", "deletion_auc", "insertion_auc", "heatmap_shape"} <= set(data)
    assert data["method"] == "gradcam" and data["heatmap_shape"] == [224, 224]
    assert set(data["target"]) == {"class_id", "label", "probability"}
    from PIL import Image

    assert Image.open(out).size[0] > 224


def test_cli_attribute_all_methods(capsys, photos):
    code = main(["attribute", str(photos["coffee"]), "--model", MODEL, "--method", "all", "--samples", "4",
                 "--max-evals", "40", "--auc-steps", "8", "--target", "967", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    records = json.loads(captured.out)
    assert [r["method"] for r in records] == list(METHODS)
    assert all(r["target"]["label"] == "espresso" for r in records)


@pytest.mark.parametrize("argv, message", [
    (["--method", "magic"], "unknown method"),
    (["--target", "5000"], "target class"),
    (["--max-evals", "3", "--method", "shap"], "at least 20"),
])
def test_cli_attribute_bad_input(capsys, photos, argv, message):
    code = main(["attribute", str(photos["chelsea"]), "--model", MODEL, *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_cli_attribute_not_an_image(capsys, tmp_path):
    fake = tmp_path / "cat.jpg"
    fake.write_text("not really a jpeg")
    assert main(["attribute", str(fake), "--model", MODEL]) == 2
    assert "not an image" in capsys.readouterr().err
