"""Real browser: on the Data quality page, click a suspected label error and land on its search results.

Same pattern as tests/test_browser.py (Debian chromium, a streamlit server on a free port); skipped when
/usr/bin/chromium is missing unless CNNVIZ_REQUIRE_BROWSER=1.
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

if not Path(CHROMIUM).exists():
    if os.environ.get("CNNVIZ_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)", pytrace=False)
    pytest.skip(f"{CHROMIUM} not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
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


def test_click_a_flagged_image_lands_on_its_search_results(server):
    from playwright.sync_api import sync_playwright

    from cnnviz.workflows import curate

    expected = curate("efficientnet_lite0", dataset="stamps")  # same cache as the server: its page reads this
    first = expected["label_issues"][0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(server + "/data_quality")
        page.get_by_text("Suspected label errors").first.wait_for(timeout=300_000)
        try:
            page.get_by_text(f"{first['given']} → {first['suggested']}").first.wait_for(timeout=120_000)
        except Exception:
            (ROOT / "tests" / "artifacts").mkdir(exist_ok=True)
            page.screenshot(path=str(ROOT / "tests" / "artifacts" / "data_quality_failure.png"))
            raise AssertionError(page.inner_text("body")[:3000]) from None
        assert page.locator("[data-testid='stException']").count() == 0
        page.locator("[data-testid='stMain'] [data-testid='stButton'] button:visible", has_text="Search").first.click()
        page.get_by_text(f"Results for {first['id']}").wait_for(timeout=300_000)
        assert "/search" in page.url
        assert page.locator("[data-testid='stException']").count() == 0
        browser.close()
