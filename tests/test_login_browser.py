"""Real-browser login test: the dashboard behind Streamlit's native OIDC login (st.login).

A local OpenID Connect provider (``oidc-provider-mock``) runs in a thread; ``streamlit run app.py`` gets
an ``[auth]`` secrets file from a temp folder (``--secrets.files``), so the repo's ``.streamlit/`` is
never touched. Checks: an anonymous visitor sees only the login button; after logging in the app works
and the sidebar names the user; after logging out the app is closed again. Skipped when chromium is
missing unless CNNVIZ_REQUIRE_BROWSER=1 (set by CI), where it fails.
"""

from __future__ import annotations

import secrets

import pytest
from browser_support import chromium_page, free_port, require_chromium, streamlit_server

require_chromium()

USER = "ada@example.org"


@pytest.fixture(scope="module")
def provider():
    from oidc_provider_mock import User, run_server_in_thread

    with run_server_in_thread(user_claims=[User(sub=USER, claims={"email": USER, "name": "Ada Lovelace"})]) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def server(provider, tmp_path_factory):
    port = free_port()
    folder = tmp_path_factory.mktemp("auth")
    secrets_file = folder / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        'client_id = "cnnviz-test"\n'
        'client_secret = "not-a-secret"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n')
    env = {"AUTHLIB_INSECURE_TRANSPORT": "1"}  # the local provider speaks plain http
    with streamlit_server(folder, env, ["--secrets.files", str(secrets_file)], host="localhost", port=port,
                          show_log=True) as url:
        yield url


@pytest.fixture(scope="module")
def page():
    with chromium_page(height=1000) as pg:
        yield pg


def _closed(page) -> None:
    """Only the login screen: its button, no sidebar pickers, no page content."""
    page.get_by_role("button", name="Log in").wait_for(timeout=120_000)
    page.wait_for_timeout(500)
    assert page.get_by_text("Dataset", exact=True).count() == 0
    assert page.get_by_text("click one").count() == 0
    assert page.locator("[data-testid='stSidebar']").count() == 0 or not page.locator("[data-testid='stSidebar']").is_visible()
    assert page.locator("[data-testid='stException']").count() == 0


def test_login_opens_the_app_and_logout_closes_it(server, page):
    page.goto(server)
    _closed(page)
    page.goto(server + "/compare")  # a deep link is closed too
    _closed(page)

    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name=USER).wait_for(timeout=60_000)  # the provider's login form
    page.get_by_role("button", name=USER).click()

    page.get_by_text("Ada Lovelace").wait_for(timeout=120_000)  # back in the app, signed in: the sidebar names the user
    page.get_by_text("cnnviz — semantic image search").wait_for(timeout=60_000)  # the home page runs
    assert page.get_by_text("Dataset", exact=True).count() >= 1  # and the sidebar pickers are there
    page.get_by_role("link", name="Benchmark").click()  # a page that needs no model (the cold home page builds one)
    page.get_by_text("Benchmark — accuracy versus latency").wait_for(timeout=120_000)
    page.get_by_text("Measured", exact=False).first.wait_for(timeout=120_000)
    assert page.locator("[data-testid='stException']").count() == 0

    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="End session").click(timeout=60_000)  # the provider confirms (RP-initiated logout)
    _closed(page)
    page.goto(server)  # a fresh load: the identity cookie is gone
    _closed(page)
