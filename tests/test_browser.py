"""Real-browser end-to-end test: Debian chromium driven by playwright.

Starts `streamlit run app.py` on a free localhost port, clicks through the main
flow (home → click an image → results and score → Compare → switch a model)
and saves screenshots under tests/artifacts/. Skipped when /usr/bin/chromium is
missing unless CNNVIZ_REQUIRE_BROWSER=1 (set by .ci/run), where it fails.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"

if not Path(CHROMIUM).exists():
    if os.environ.get("CNNVIZ_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)", pytrace=False)
    pytest.skip(f"{CHROMIUM} not installed", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    log = open(tmp_path_factory.mktemp("streamlit") / "server.log", "w+b")  # noqa: SIM115 - open for the server's lifetime
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        log.seek(0)
        pytest.fail("streamlit did not start: " + log.read().decode(errors="replace")[-2000:])
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        pg = browser.new_page(viewport={"width": 1400, "height": 1400})
        yield pg
        browser.close()


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
    page.get_by_role("button", name="birds").first.click()
    page.get_by_text("Search score").first.wait_for(timeout=60_000)
    results = page.locator("[data-testid='stImage']")
    assert results.count() > 15  # query + 15 results + the grid
    score_text = page.locator("[data-testid='stMetricValue']").first.inner_text()
    assert 0 <= float(score_text.split("/")[0]) <= 100
    assert "✅" in page.content()
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
    from cnnviz.data import load_dataset
    from cnnviz.workflows import search

    ds = load_dataset("stamps")
    classes = ds.classes[::3][:4]
    pages = []
    for cls in classes:
        context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
        p = context.new_page()
        p.goto(server)
        p.get_by_role("button", name=cls, exact=True).last.wait_for(timeout=300_000)
        pages.append(p)
    for p, cls in zip(pages, classes):  # all four reruns are in flight together
        p.get_by_role("button", name=cls, exact=True).nth(1).click(no_wait_after=True)
    for p, cls in zip(pages, classes):
        header = p.locator("h3", has_text="Most similar to").first
        header.wait_for(timeout=300_000)
        query = header.inner_text().removeprefix("Most similar to").strip()
        assert query.startswith(cls + "/"), (cls, query)  # each session shows its own click
        p.get_by_text("Search score").first.wait_for(timeout=60_000)
        text = p.inner_text("body")
        expected = search("efficientnet_lite0", "embedding", query, dataset="stamps", metric="cosine")
        assert f"{expected.score:.1f} / 100" in text, query
        for hit in expected.hits:
            assert f"#{hit.rank} " in text and f"sim {hit.similarity:.3f}" in text, (query, hit)
        p.context.close()
