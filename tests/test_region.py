"""Region search: --crop on a composite of two images, box checks, scaling, the crop box on the pages."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz.cli import main
from cnnviz.region import MIN_CROP_PX, Crop, RegionError, crop_image

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def open_upload_tab(at):
    """The Search page's uploader lives in a lazy tab: open it (as a click on the tab would)."""
    at.session_state["search.query_source"] = "Upload an image"
    return at.run()


@pytest.fixture(scope="module")
def composite(tiny_folder, tmp_path_factory) -> Path:
    """A bird (left) and a banknote (right), each 224 × 224, side by side: 448 × 224."""
    left = Image.open(sorted((tiny_folder / "birds").iterdir())[0]).convert("RGB").resize((224, 224))
    right = Image.open(sorted((tiny_folder / "money").iterdir())[0]).convert("RGB").resize((224, 224))
    out = Image.new("RGB", (448, 224))
    out.paste(left, (0, 0))
    out.paste(right, (224, 0))
    path = tmp_path_factory.mktemp("composite") / "bird_and_money.png"
    out.save(path)
    return path


def _search(capsys, folder: Path, query: Path, *extra: str) -> dict:
    code = main(["search", "--images", str(folder), "--model", "efficientnet_lite0", "--query", str(query),
                 "--top-k", "5", "--json", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_crop_of_a_composite_finds_the_class_of_that_side(tiny_folder, composite, capsys):
    left = _search(capsys, tiny_folder, composite, "--crop", "0,0,224,224")
    right = _search(capsys, tiny_folder, composite, "--crop", "224,0,224,224")
    left_classes = Counter(r["label"] for r in left["results"])
    right_classes = Counter(r["label"] for r in right["results"])
    assert left_classes.most_common(1)[0][0] == "birds" and left_classes["birds"] >= 3, left_classes
    assert right_classes.most_common(1)[0][0] == "money" and right_classes["money"] >= 3, right_classes
    assert left["query"]["crop"] == {"x": 0, "y": 0, "w": 224, "h": 224}
    whole = _search(capsys, tiny_folder, composite)
    assert whole["query"]["crop"] is None
    assert [r["id"] for r in whole["results"]] != [r["id"] for r in left["results"]]


@pytest.mark.parametrize("crop,message", [
    ("0,0,20,100", f"minimum is {MIN_CROP_PX} px"),
    ("300,0,200,100", "extends past the 448×224 px"),
    ("1,2,3", "four integers"),
    ("a,b,c,d", "four integers"),
    ("-5,0,100,100", "must be ≥ 0"),
])
def test_bad_crop_is_refused_with_the_reason(tiny_folder, composite, capsys, crop, message):
    code = main(["search", "--images", str(tiny_folder), "--model", "efficientnet_lite0", "--query", str(composite),
                 f"--crop={crop}"])
    assert code == 2
    assert message in capsys.readouterr().err


def test_crop_is_in_original_pixels_even_when_decoded_smaller(tmp_path):
    """A 4000 × 1000 image decodes at 2048 px wide; the box still selects the original region."""
    img = np.zeros((1000, 4000, 3), np.uint8)
    img[:, 3000:] = (0, 0, 255)  # the right quarter is blue, the rest black
    path = tmp_path / "wide.png"
    Image.fromarray(img).save(path)
    region = np.asarray(crop_image(path, Crop(3000, 0, 1000, 1000)))
    assert region.shape[0] == region.shape[1] == 512  # 1000 px at 2048/4000 scale
    assert region[..., 2].mean() > 250 and region[..., 0].mean() < 5  # all blue: the right box, scaled
    with pytest.raises(RegionError):
        crop_image(path, Crop(3500, 0, 600, 1000))  # 4100 > 4000: outside the original


def test_crop_respects_exif_orientation(tmp_path):
    """Coordinates are of the upright image the user sees (EXIF orientation 6: rotated 90°)."""
    img = Image.new("RGB", (200, 100), (0, 0, 0))
    img.paste((255, 0, 0), (0, 0, 100, 100))  # stored left half red → after rotation, the top half
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif, quality=95)
    data = buf.getvalue()
    top = np.asarray(crop_image(data, Crop(0, 0, 100, 100)))
    bottom = np.asarray(crop_image(data, Crop(0, 100, 100, 100)))
    assert top[..., 0].mean() > 200 and bottom[..., 0].mean() < 50
    with pytest.raises(RegionError, match="extends past the 100×200"):
        crop_image(data, Crop(0, 0, 150, 100))


def test_crop_box_on_home_and_search_pages(photos):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.session_state["cnnviz.query"] = "birds/magpie.jpg"
    at.run()
    captions = lambda: [c for h in at.get("html") for c in re.findall(r"<figcaption[^>]*>(.*?)</figcaption>", h.value)]  # noqa: E731
    whole = captions()
    assert len(whole) == 15
    assert any(s.value == "Most similar to birds/magpie.jpg" for s in at.subheader)
    at.toggle(key="home.region_on").set_value(True).run()
    assert not at.exception
    # The cropper's default box (20 %–80 % of the 128 px stamp) is the query: heading, caption and results change.
    assert any(s.value == "Most similar to birds/magpie.jpg (region 25,25,77,77)" for s in at.subheader)
    assert any("Region x=25, y=25, 77×77 px of the 128×128 px image" in c.value for c in at.caption)
    assert len(captions()) == 15 and captions() != whole
    assert any(m.label == "Search score" for m in at.metric)  # a region of a dataset image keeps its class

    at.switch_page("app_pages/search.py").run()
    open_upload_tab(at).file_uploader(key="search.upload").set_value(("coffee.jpg", photos["coffee"].read_bytes(), "image/jpeg")).run()
    at.toggle(key="search.region_on").set_value(True).run()
    assert not at.exception
    assert any(s.value.startswith("Results for coffee.jpg (region ") for s in at.subheader)
    assert any("of the 600×400 px image" in c.value for c in at.caption)
