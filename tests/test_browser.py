"""Real-browser end-to-end test: Debian chromium driven by playwright.

Starts `streamlit run app.py` on a free localhost port, clicks through the main
flow (home → click an image → results and score → Compare → switch a model),
pages through a generated 3,000-image folder opened by a link, and saves
screenshots under tests/artifacts/. Skipped when /usr/bin/chromium is
missing unless CNNVIZ_REQUIRE_BROWSER=1 (set by .ci/run), where it fails.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from browser_support import ARTIFACTS, chromium_page, require_chromium, streamlit_server

require_chromium()


BIG_CLASSES = 10
BIG_PER_CLASS = 300


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory) -> Path:
    """3,000 tiny PNGs in 10 classes (a colour each, with noise), with efficientnet_lite0 features written
    straight into the cache: clustered by class, so scores are meaningful. This test is about the dashboard at
    scale, not the forward pass (test_features covers extraction), and 3,000 forward passes take minutes here."""
    import numpy as np
    from PIL import Image

    from cnnviz import cache
    from cnnviz.data.folder import scan_folder
    from cnnviz.features import feature_key, layer_infos
    from cnnviz.workflows import get_model

    root = tmp_path_factory.mktemp("roots") / "big"
    rng = np.random.default_rng(0)
    for c in range(BIG_CLASSES):
        (root / f"c{c}").mkdir(parents=True)
        base = rng.integers(0, 255, 3)
        for i in range(BIG_PER_CLASS):
            pixels = np.clip(base + rng.normal(0, 25, (12, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"c{c}" / f"img_{c}_{i:04d}.png")
    ds = scan_folder(root)
    loaded = get_model("efficientnet_lite0")
    labels = np.array([int(item.label[1:]) for item in ds.items])
    digest = ds.digest()
    for info in layer_infos(loaded):
        centres = rng.normal(size=(BIG_CLASSES, info.pooled_dim))
        with cache.writing_matrix("features", feature_key(digest, loaded, info.name, "avg"),
                                  (len(ds.items), info.pooled_dim), {"layer": info.name}) as out:
            out[:] = centres[labels] + 0.8 * rng.normal(size=(len(ds.items), info.pooled_dim))
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, big_folder):
    with streamlit_server(tmp_path_factory.mktemp("streamlit"), {"CNNVIZ_DATA_ROOTS": str(big_folder.parent)}) as url:
        yield url


@pytest.fixture(scope="module")
def page():
    with chromium_page() as pg:
        yield pg


SHEET = "img[data-testid='cnnvizSheet']"  # cnnviz/ui/sheet.py


def _sheet(pg):
    """The gallery's contact sheet: one image in the page."""
    return pg.locator(SHEET).first


def click_cell(pg, n: int) -> None:
    """Click the n-th image (0-based) of the gallery page, wherever the sheet is scaled to."""
    from cnnviz.gallery import SheetLayout

    layout, img = SheetLayout(), _sheet(pg)
    img.wait_for(timeout=180_000)
    pg.wait_for_function("s => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth > 0; }",
                         arg=SHEET, timeout=60_000)  # decoded: the box has its final height
    box = img.bounding_box()
    width, _ = layout.size(60)
    scale = box["width"] / width
    x = ((n % layout.columns) * layout.pitch_x + layout.cell / 2) * scale
    y = ((n // layout.columns) * layout.pitch_y + layout.cell / 2) * scale
    img.click(position={"x": x, "y": y}, no_wait_after=True)


def _gallery_caption(pg) -> str:
    cap = pg.locator("[data-testid='stCaptionContainer']", has_text="Click an image to search with it").first
    cap.wait_for(timeout=180_000)
    return cap.inner_text()


def test_deep_link_on_a_fresh_server_runs_the_entrypoint(server, page):
    """Opening /compare first must still run app.py (sidebar and state), not only the page."""
    page.goto(server + "/compare")
    page.get_by_text("Compare models side by side").wait_for(timeout=180_000)
    page.get_by_text("Pick a query image").wait_for(timeout=180_000)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.get_by_text("Dataset", exact=True).count() >= 1  # the sidebar picker rendered


def test_main_flow_in_a_real_browser(server, page):
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(server)
    page.get_by_text("click one").wait_for(timeout=180_000)
    click_cell(page, 0)  # the first image: birds/…
    page.get_by_text("Search score").first.wait_for(timeout=60_000)
    # the query image and the 15 results' grid; the score can show before the last images
    page.wait_for_function("() => document.querySelectorAll(\"[data-testid='stImage']\").length >= 1 && "
                           "[...document.querySelectorAll('.cnnviz-hit > img')].filter(i => i.complete && i.naturalWidth).length >= 15",
                           timeout=60_000)
    score_text = page.locator("[data-testid='stMetricValue']").first.inner_text()
    assert 0 <= float(score_text.split("/")[0]) <= 100
    assert page.locator("h3", has_text="Most similar to birds/").count() == 1
    assert page.locator("img[alt='same class as the query']").count() >= 1  # SVG icons: no emoji font needed
    assert "query=birds" in page.url  # the address reproduces the view
    page.screenshot(path=str(ARTIFACTS / "home_results.png"))

    page.get_by_role("link", name="Compare models").click()
    page.get_by_text("Dataset mean search score").wait_for(timeout=300_000)
    scores_before = page.get_by_text("score", exact=False).all_inner_texts()
    # Switch a model: remove the last chosen one and add efficientnet_lite1.
    page.locator("button[aria-label^='Remove ']:visible").last.click()
    page.locator("[data-testid='stMultiSelect'] input").click()
    page.keyboard.type("efficientnet_lite1")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.get_by_text("efficientnet_lite1 · score").wait_for(timeout=300_000)
    page.get_by_text("Every metric, embedding layer").wait_for(timeout=300_000)
    page.locator("[data-testid='stVegaLiteChart']").first.wait_for(timeout=60_000)
    page.wait_for_timeout(2000)
    assert page.get_by_text("efficientnet_lite1 · score").count() == 1
    assert page.get_by_text("score", exact=False).all_inner_texts() != scores_before
    page.set_viewport_size({"width": 1400, "height": 3000})  # Streamlit scrolls inside its own container
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "compare.png"))


def test_search_map_shows_thumbnails_on_hover_and_a_click_makes_the_query(server, page):
    """The map (a lazy tab, bound to ?view=) is drawn from a cached Vega-Lite spec with Arrow data: hovering a
    point shows its thumbnail, clicking it makes that image the query."""
    page.goto(server + "/search")
    page.get_by_text("How well does this setting search the whole dataset?").wait_for(timeout=300_000)
    assert page.get_by_text("Hover a point to see the image").count() == 0  # not drawn until its tab is opened
    page.get_by_role("tab", name="Feature map").click()
    page.get_by_text("Hover a point to see the image").wait_for(timeout=300_000)
    assert "view=Feature" in page.url
    canvas = page.locator("[data-testid='stVegaLiteChart'] canvas").last
    canvas.wait_for(timeout=60_000)
    canvas.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    box = canvas.bounding_box()
    tooltip = page.locator("#vg-tooltip-element")
    hit = None
    for fy in [i / 24 for i in range(2, 23)]:  # scan the plot until the mouse is over a point
        for fx in [i / 24 for i in range(2, 23)]:
            x, y = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
            page.mouse.move(x, y)
            page.wait_for_timeout(40)
            if tooltip.count() and tooltip.is_visible() and tooltip.locator("img").count():
                hit = (x, y, tooltip.inner_text())
                break
        if hit:
            break
    assert hit, "no point on the map showed a tooltip with a thumbnail"
    assert tooltip.locator("img").first.evaluate("i => i.src.startsWith('data:image/jpeg')")
    image_id = next(line.split("\t")[-1].strip() for line in hit[2].splitlines() if line.startswith("file"))
    page.mouse.click(hit[0], hit[1])
    page.get_by_text(f"Results for {image_id}").wait_for(timeout=120_000)
    assert page.locator("[data-testid='stException']").count() == 0
    page.get_by_text("Hover a point to see the image").wait_for(timeout=60_000)  # the map tab stays open
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    link = context.new_page()  # a link with the tab, in a new session, opens on the map
    link.goto(server + "/search?view=Feature+map")
    link.get_by_text("Hover a point to see the image").wait_for(timeout=300_000)
    context.close()


def test_attribution_page_in_a_real_browser(server, page):
    """Fast overlays appear first; LIME and SHAP fill in from their background jobs without a click."""
    page.goto(server + "/attribution")
    page.get_by_text("Attribution — where is the evidence").wait_for(timeout=180_000)
    page.get_by_text("deletion AUC", exact=False).nth(3).wait_for(timeout=300_000)  # intro + 3 fast overlays
    page.get_by_text("running in the background").first.wait_for(state="detached", timeout=400_000)
    page.get_by_text("Download the grid").wait_for(timeout=60_000)
    assert page.get_by_text("insertion AUC", exact=False).count() >= 6  # intro + 5 overlays
    assert page.get_by_text("insertion curve").count() == 1  # one pair of curve charts for the model row
    page.set_viewport_size({"width": 1400, "height": 2000})  # Streamlit scrolls inside its own container
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / "attribution.png"), full_page=True)


def test_four_concurrent_sessions_get_their_own_right_results(server, page):
    """Four browser sessions (one server, shared st.cache_resource) click different images at once."""
    from cnnviz.data import open_dataset
    from cnnviz.workflows import search

    ds = open_dataset("stamps")
    cells = [1, 22, 43, 58]  # four different images of the first gallery page
    pages = []
    for _ in cells:
        context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
        p = context.new_page()
        p.goto(server)
        _sheet(p).wait_for(timeout=300_000)
        pages.append(p)
    for p, n in zip(pages, cells):  # all four reruns are in flight together
        click_cell(p, n)
    for p, n in zip(pages, cells):
        header = p.locator("h3", has_text="Most similar to").first
        header.wait_for(timeout=300_000)
        query = header.inner_text().removeprefix("Most similar to").strip()
        assert query == ds.ids[n], (n, query)  # each session shows its own click
        p.get_by_text("Search score").first.wait_for(timeout=60_000)
        text = p.inner_text("body")
        expected = search("efficientnet_lite0", "embedding", query, dataset="stamps", metric="cosine")
        assert f"{expected.score:.1f} / 100" in text, query
        for hit in expected.hits:
            assert f"#{hit.rank} " in text and f"sim {hit.similarity:.3f}" in text, (query, hit)
        p.context.close()


def test_gallery_at_3000_images_pages_filters_and_searches(server, page, big_folder):
    """A link opens a 3,000-image folder; Home shows one page, paging and the class filter work, a click searches."""
    from urllib.parse import quote

    page.goto(f"{server}/?dataset={quote(str(big_folder))}")
    page.get_by_text("big: 3000 images, 10 classes").wait_for(timeout=180_000)
    assert _gallery_caption(page).startswith("Images 1–60 of 3,000.")
    _sheet(page).wait_for(timeout=60_000)
    assert page.locator("img").count() <= 100  # one page, not 3,000 images
    assert page.locator(SHEET).count() == 1

    page.get_by_role("button", name="chevron_right").click()
    page.get_by_text("Images 61–120 of 3,000.").wait_for(timeout=60_000)
    page.get_by_role("button", name="Random").click()
    page.wait_for_function("() => !document.body.innerText.includes('Images 61–120 of 3,000.')", timeout=60_000)
    assert "of 3,000." in _gallery_caption(page)

    page.locator("[data-testid='stSelectbox']", has_text="Class").locator("input").click()
    page.get_by_role("option", name="c7", exact=True).click()
    page.get_by_text("Images 1–60 of 300 matching (dataset: 3,000).").wait_for(timeout=60_000)
    # The filtered page's sheet, not the previous one still on screen (a click is read on the page it was made on).
    page.locator(f"{SHEET}[alt='Images 1–60 of 300']").wait_for(timeout=60_000)

    click_cell(page, 5)  # the 6th image of class c7
    header = page.locator("h3", has_text="Most similar to")
    header.wait_for(timeout=120_000)
    assert header.inner_text().removeprefix("Most similar to").strip() == "c7/img_7_0005.png"
    score = page.locator("[data-testid='stMetricValue']").first.inner_text()
    assert 50 <= float(score.split("/")[0]) <= 100  # clustered features: mostly the same class
    assert page.locator("img").count() <= 100
    assert "query=c7" in page.url
    _sheet(page).wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "home_3000.png"))


def test_a_click_on_the_page_shown_counts_while_the_next_page_is_on_its_way(server, page, big_folder):
    """The user clicks an image of page 1 after asking for page 2, before page 2 arrives: the click is read on page 1
    (what they saw), not dropped. The server's messages are held back to make that moment last."""
    import re
    from urllib.parse import quote

    held: list = []
    hold = False  # while True, the server's messages wait in `held`
    routes = []

    def relay(ws):
        server_ws = ws.connect_to_server()
        ws.on_message(server_ws.send)
        server_ws.on_message(lambda message: held.append(message) if hold else ws.send(message))
        routes.append(ws)

    pg = page.context.browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    pg.route_web_socket(re.compile(r".*/_stcore/stream"), relay)
    pg.goto(f"{server}/?dataset={quote(str(big_folder))}")
    pg.locator(f"{SHEET}[alt='Images 1–60 of 3,000']").wait_for(timeout=180_000)
    hold = True
    pg.get_by_role("button", name="chevron_right").click()  # page 2: its run's messages are held
    deadline = time.time() + 60
    while not held and time.time() < deadline:
        pg.wait_for_timeout(100)
    pg.wait_for_timeout(1500)  # the page-2 run has finished on the server
    click_cell(pg, 5)  # page 1 still on screen
    pg.wait_for_timeout(1500)  # the click has reached the server and run
    while held:  # in order, and still holding what arrives meanwhile
        routes[-1].send(held.pop(0))
    hold = False
    header = pg.locator("h3", has_text="Most similar to")
    header.wait_for(timeout=60_000)
    assert header.inner_text().removeprefix("Most similar to").strip() == "c0/img_0_0005.png"  # page 1's 6th image
    pg.context.close()


def test_add_dataset_is_drawn_when_opened_and_opens_a_server_folder(server, page, big_folder):
    """The sidebar's "Add a dataset" is lazy: nothing of it is on the page until it is opened; then a folder
    under the data roots opens as the dataset."""
    page.goto(server)
    page.get_by_text("click one").wait_for(timeout=180_000)
    sidebar = page.locator("[data-testid='stSidebar']")
    zip_upload = sidebar.get_by_text("…or a .zip of one")
    assert zip_upload.count() == 0
    sidebar.get_by_text("Add a dataset").click()
    picker = sidebar.locator("[data-testid='stSelectbox']", has_text="Folder on the server")
    picker.wait_for(timeout=60_000)
    zip_upload.wait_for(timeout=60_000)
    picker.locator("input").click()
    page.get_by_role("option", name=str(big_folder), exact=True).click()
    sidebar.get_by_role("button", name="Open folder").click()
    page.get_by_text("big: 3000 images, 10 classes").wait_for(timeout=180_000)
