"""Real browser (Debian chromium + playwright): the Adapt page trains and shows before/after; the crop box on Home.

Same server pattern as tests/test_browser.py; skipped without /usr/bin/chromium unless
CNNVIZ_REQUIRE_BROWSER=1. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import time

import pytest
from browser_support import ARTIFACTS, chromium_page, require_chromium, streamlit_server

require_chromium()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with streamlit_server(tmp_path_factory.mktemp("streamlit")) as url:
        yield url


@pytest.fixture(scope="module")
def page():
    with chromium_page() as pg:
        yield pg


def test_crop_box_on_home_in_a_real_browser(server, page):
    """Turn region search on, drag the box: the heading names the new region and the results change."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(server + "/?query=birds%2Fmagpie.jpg")
    page.locator("h3", has_text="Most similar to birds/magpie.jpg").first.wait_for(timeout=300_000)
    page.get_by_text("Search a region of the query").click()
    page.locator("h3", has_text="(region 25,25,77,77)").wait_for(timeout=120_000)
    results = lambda: page.locator(".cnnviz-hit figcaption").all_inner_texts()  # noqa: E731
    before = results()
    canvas = page.frame_locator("iframe[title*='st_cropper']").first.locator("canvas").last
    canvas.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # fabric.js draws the box once the image has loaded
    box = canvas.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2  # the default box is centred
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx - 12, cy - 12, steps=4)
    page.mouse.move(cx - 25, cy - 25, steps=4)
    page.mouse.up()
    heading = page.locator("h3", has_text="Most similar to birds/magpie.jpg (region")
    deadline = time.time() + 120
    while "25,25,77,77" in heading.first.inner_text() and time.time() < deadline:
        page.wait_for_timeout(500)
    assert "25,25,77,77" not in heading.first.inner_text()
    page.wait_for_timeout(1500)
    assert results() != before
    assert page.locator("[data-testid='stException']").count() == 0
    page.screenshot(path=str(ARTIFACTS / "region_search.png"))


def test_adapt_page_in_a_real_browser(server, page):
    """Train a small projection from the page; the loss chart, the before/after table and the side-by-side appear."""
    page.goto(server + "/adapt")
    page.get_by_text("Adapt — tune search to your own data").wait_for(timeout=180_000)
    epochs = page.get_by_label("Epochs")
    epochs.fill("30")
    epochs.press("Enter")
    name = page.get_by_label("Name of the adapted model")
    name.fill("browser+stamps")
    name.press("Enter")
    page.wait_for_timeout(3000)  # the rerun that takes the new settings
    page.get_by_role("button", name="Train").click()
    page.get_by_text("Held-out mean search score").wait_for(timeout=300_000)
    page.get_by_text("The same held-out queries, before and after").wait_for(timeout=60_000)
    # the side-by-side first extracts the adapted model's features of the dataset (a progress bar), then fills in
    page.get_by_text("after · score").first.wait_for(timeout=180_000)
    body = page.inner_text("body")
    assert "+stamps: held-out search before and after" in body
    assert "held-out images" in body and "before · score" in body and "after · score" in body
    assert page.locator("[data-testid='stVegaLiteChart']").count() >= 1  # the training loss
    assert page.locator("[data-testid='stException']").count() == 0
    page.set_viewport_size({"width": 1400, "height": 2400})
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "adapt.png"))
