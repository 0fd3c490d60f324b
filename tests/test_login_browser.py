"""Real-browser login test: the dashboard behind Streamlit's native OIDC login (st.login).

A local OpenID Connect provider (``oidc-provider-mock``) runs in a thread; ``streamlit run app.py`` gets
an ``[auth]`` secrets file from a temp folder (``--secrets.files``), so the repo's ``.streamlit/`` is
never touched. Checks: an anonymous visitor sees only the login button; after logging in the app works
and the sidebar names the user; after logging out the app is closed again. Skipped when chromium is
missing unless CNNVIZ_REQUIRE_BROWSER=1 (set by CI), where it fails.
"""

from __future__ import annotations

import os
import secrets
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

USER = "ada@example.org"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def provider():
    from oidc_provider_mock import User, run_server_in_thread

    with run_server_in_thread(user_claims=[User(sub=USER, claims={"email": USER, "name": "Ada Lovelace"})]) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def server(provider, tmp_path_factory):
    port = _free_port()
    folder = tmp_path_factory.mktemp("auth")
    secrets_file = folder / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        'client_id = "cnnviz-test"\n'
        'client_secret = "not-a-secret"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n')
    log = open(folder / "server.log", "w+b")  # noqa: SIM115 - open for the server's lifetime
    env = {**os.environ, "AUTHLIB_INSECURE_TRANSPORT": "1"}  # the local provider speaks plain http
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address", "localhost",
         "--server.headless", "true", "--browser.gatherUsageStats", "false", "--secrets.files", str(secrets_file)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    url = f"http://localhost:{port}"
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
    log.seek(0)
    print(log.read().decode(errors="replace")[-3000:])  # shown by pytest when a test failed
    log.close()


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield pg
        browser.close()


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
