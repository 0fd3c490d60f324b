"""Real browser: on the Data quality page, click a suspected label error and land on its search results.

Same pattern as tests/test_browser.py (Debian chromium, a streamlit server on a free port); skipped when
/usr/bin/chromium is missing unless CNNVIZ_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import pytest
from browser_support import ARTIFACTS, chromium_page, require_chromium, streamlit_server

require_chromium()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with streamlit_server(tmp_path_factory.mktemp("streamlit")) as url:
        yield url


def test_click_a_flagged_image_lands_on_its_search_results(server):
    from cnnviz.workflows import curate

    expected = curate("efficientnet_lite0", dataset="stamps")  # same cache as the server: its page reads this
    first = expected["label_issues"][0]
    with chromium_page() as page:
        page.goto(server + "/data_quality")
        page.get_by_text("Suspected label errors").first.wait_for(timeout=300_000)
        try:
            page.get_by_text(f"{first['given']} → {first['suggested']}").first.wait_for(timeout=120_000)
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "data_quality_failure.png"))
            raise AssertionError(page.inner_text("body")[:3000]) from None
        assert page.locator("[data-testid='stException']").count() == 0
        page.locator("[data-testid='stMain'] [data-testid='stButton'] button:visible", has_text="Search").first.click()
        page.get_by_text(f"Results for {first['id']}").wait_for(timeout=300_000)
        assert "/search" in page.url
        assert page.locator("[data-testid='stException']").count() == 0
