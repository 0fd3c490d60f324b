"""Shared by the real-browser tests: a `streamlit run app.py` server on a free port and a Debian chromium page.

Playwright never downloads a browser here: it drives /usr/bin/chromium. A module calls
:func:`require_chromium` at import: without chromium it is skipped, unless CNNVIZ_REQUIRE_BROWSER=1
(set by .ci/run), where it fails.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
# Without the background-networking flags chromium keeps trying hosts this closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CNNVIZ_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)", pytrace=False)
        pytest.skip(f"{CHROMIUM} not installed", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(log_dir: Path, env: dict[str, str] | None = None, extra_args: Sequence[str] = (),
                     host: str = "127.0.0.1", port: int | None = None, show_log: bool = False) -> Iterator[str]:
    """Serve app.py until the block ends; yields its URL. The log stays open for the server's lifetime."""
    port = port or free_port()
    log = open(log_dir / "server.log", "w+b")  # noqa: SIM115 - open for the server's lifetime
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address", host,
         "--server.headless", "true", "--browser.gatherUsageStats", "false", *extra_args],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
    )
    url = f"http://{host}:{port}"
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
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if show_log:
            log.seek(0)
            print(log.read().decode(errors="replace")[-3000:])  # shown by pytest when a test failed
        log.close()


@contextmanager
def chromium_page(width: int = 1400, height: int = 1400):
    """A fresh page in headless Debian chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()
