import json

import numpy as np
import pytest

from cnnviz import featureviz as F
from cnnviz.cli import main
from cnnviz.workflows import get_model

FAST = F.ActMaxConfig(steps=24)


def test_evenly_spaced_channels():
    assert F.evenly_spaced_channels(10, 30) == list(range(10))
    ch = F.evenly_spaced_channels(1280, 30)
    assert len(ch) == 30 and ch[0] == 0 and ch[-1] == 1279 and ch == sorted(ch)


def test_activation_maximization_raises_the_channel_well_above_gray_and_random(isolated_cache):
    loaded = get_model("efficientnet_lite0")
    layer, channels = "block5c_out", [3, 40]
    visuals = F.maximize_channels(loaded, layer, channels, FAST, batch=2)
    model = F.layer_model(loaded, layer)
    rand = np.random.default_rng(1).uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)
    for v in visuals:
        from PIL import Image

        img = np.asarray(Image.open(v.image_path), np.float32)
        assert img.shape == (224, 224, 3) and np.isfinite(img).all() and img.min() >= 0 and img.max() <= 255
        assert img.std() > 1  # not a flat image
        act = float(np.asarray(F._channel_means(model(img[None]), np.array([v.channel])))[0])
        random_act = float(np.asarray(F._channel_means(model(rand), np.array([v.channel])))[0])
        assert act == pytest.approx(v.final_activation, rel=0.05, abs=0.05)  # the PNG round trip keeps it
        assert act > 3 * max(v.baseline_activation, random_act, 0.5)
    # Cached: the second call returns the same files without optimising.
    again = F.maximize_channels(loaded, layer, channels, FAST)
    assert [a.image_path for a in again] == [v.image_path for v in visuals]


def test_class_visualization_raises_the_class_logit(isolated_cache):
    (v,) = F.visualize_classes(get_model("efficientnet_lite0"), [967], FAST)
    assert v.final_activation > v.baseline_activation + 3


def test_top_activating_sorted():
    pooled = np.array([[0.1, 5.0], [0.9, 1.0], [0.5, 3.0], [0.7, 2.0]], np.float32)
    idx, vals = F.top_activating(pooled, 0, k=3)
    assert idx.tolist() == [1, 3, 2] and np.all(np.diff(vals) <= 0)


def test_activation_maps_shape_and_range(photos):
    from cnnviz.data.images import load_for_model

    loaded = get_model("efficientnet_lite0")
    img = load_for_model(photos["chelsea"], 224)[None]
    maps = F.activation_maps(loaded, "block6d_out", img, 7)
    assert maps.shape == (1, 224, 224) and maps.min() >= 0 and maps.max() <= 1
    assert F.overlay(img[0], maps[0]).dtype == np.uint8


def test_featureviz_cli_json(capsys, tmp_path, isolated_cache):
    code = main(["featureviz", "--model", "efficientnet_lite0", "--layer", "stem_relu", "--channels", "0,7",
                 "--steps", "8", "--out", str(tmp_path / "viz"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["model"] == "efficientnet_lite0" and data["layer"] == "stem_relu"
    assert [c["channel"] for c in data["channels"]] == [0, 7]
    for c in data["channels"]:
        assert set(c) >= {"channel", "image_path", "seconds", "final_activation"}
        assert (tmp_path / "viz").joinpath(c["image_path"].split("/")[-1]).exists()
    assert main(["featureviz", "--model", "efficientnet_lite0", "--layer", "stem_relu", "--channels", "99"]) == 2
    assert "channels 0–31" in capsys.readouterr().err
