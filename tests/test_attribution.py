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
    np.testing.assert_array_equal(maps[1], np.zeros((2, 2)))  # all negative: no evidence, not min–max rescaled
    assert np.isnan(positive_part(np.array([[[np.nan, 1.0]]]))).any()  # NaN is kept for explain to report
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


@pytest.mark.parametrize("raw, evidence", [(-np.ones((224, 224), np.float32), "none"),
                                           (np.zeros((224, 224), np.float32), "none"),
                                           (np.full((224, 224), np.nan, np.float32), "invalid")])
def test_a_map_without_positive_evidence_is_said_so_not_scored(lite0, chelsea, isolated_cache, monkeypatch, raw, evidence):
    """An all-negative map used to be min–max scaled into a hot region and scored; a NaN map went blank."""
    from cnnviz.attribution.base import Attributor, positive_part

    monkeypatch.setattr(Attributor, "with_extras", lambda self, images, targets, progress=None: (positive_part(raw[None]), {}))
    a = explain(lite0, chelsea, "occlusion", faith=QUICK)
    assert a.evidence == evidence and not a.scored
    assert not a.heatmap.any() and np.isfinite(a.heatmap).all()
    assert a.faithfulness.deletion_auc is None and a.faithfulness.insertion_auc is None
    record = json.loads(json.dumps(a.to_dict()))
    assert record["evidence"] == evidence and record["deletion_auc"] is None
    assert ("no positive evidence" if evidence == "none" else "NaN") in a.faithfulness_text(markdown=True)
    again = explain(lite0, chelsea, "occlusion", faith=QUICK)  # from the disk cache
    assert again.evidence == evidence and again.faithfulness.deletion_auc is None

    from cnnviz.ui.attributions import curves_frame, grid_download

    assert curves_frame({"occlusion": a}).empty
    assert grid_download({("m", "occlusion"): a}, {"m": chelsea}, 0.5, "jet", "heatmap")[:4] == b"\x89PNG"


def test_a_real_positive_map_is_scored(lite0, chelsea):
    a = explain(lite0, chelsea, "gradcam", faith=QUICK)
    assert a.evidence == "positive" and 0 <= a.faithfulness.deletion_auc <= 1
    assert "deletion AUC **" in a.faithfulness_text(markdown=True)
