"""The Search page alone: new tabs of one browser open /search?dataset=DIR until every part is final.

    python benchmarks/search_page.py --images DIR [--repeats 5]

A shorter run than ``ui_scale.py`` for the page that costs the most: the same server, readiness check
(the default view: dataset figures and the gallery sheet loaded) and features-precomputed rule. The first tab
is cold (the figures are computed or read from disk); in it the Feature map tab is then opened until the UMAP
map is drawn (the first time cold: numba's compile and the fit), and closed, repeatedly. p50/p95 of the page
are over the later tabs. Then the page is loaded ``--repeats`` times more in one open tab (a link followed in
it, or a reload): a new Streamlit session each time, without a new tab's renderer process.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import quote

from ui_scale import (CHROMIUM, _new_sessions, _search_ready, check_features, free_port, map_tab, rss_mb, same_tab_loads,
                      start_server)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", required=True, type=Path, help="an ImageFolder whose features are precomputed")
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    images = args.images.expanduser().resolve()
    ids = check_features(images, args.model)
    port = free_port()
    server = start_server(port, images.parent)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])  # as ui_scale.py
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            url = f"http://127.0.0.1:{port}/search?dataset={quote(str(images))}"
            # The cold tab first opens the map too (UMAP's one-off compile and fit, started in the background by
            # the first visit), so the warm tabs after it measure the steady state.
            first, last = _new_sessions(context.new_page, url, _search_ready, 1, keep_last=True)
            tab = map_tab(last, args.repeats)
            last.close()
            result, _ = _new_sessions(context.new_page, url, _search_ready, args.repeats, close=lambda pg: pg.close(),
                                      cold_first=False)
            result["cold"] = first["cold"]
            same_tab = same_tab_loads(context, url, _search_ready, args.repeats)
        rss = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    cold, b, s = result["cold"], result["browser"], result["server"]
    print(f"{images} ({len(ids):,} images), {args.model}: Search page ready in a new tab, {args.repeats} warm repeats")
    print(f"cold {cold['browser_ms'] / 1000:.2f} s; browser p50 {b['p50'] / 1000:.2f} s, p95 {b['p95'] / 1000:.2f} s; "
          f"server p50 {s['p50'] / 1000:.2f} s, p95 {s['p95'] / 1000:.2f} s; server RSS {rss:.0f} MB")
    st = same_tab["browser"]
    print(f"same tab, loaded again: browser p50 {st['p50'] / 1000:.2f} s, p95 {st['p95'] / 1000:.2f} s; server p50 "
          f"{same_tab['server']['p50'] / 1000:.2f} s")
    m, back = tab["browser"], tab["back to the figures"]["browser"]
    print(f"Feature map tab → map drawn: cold {tab['cold']['browser_ms'] / 1000:.2f} s; p50 {m['p50'] / 1000:.2f} s, "
          f"p95 {m['p95'] / 1000:.2f} s (server p50 {tab['server']['p50'] / 1000:.2f} s); back to the figures "
          f"p50 {back['p50'] / 1000:.2f} s, p95 {back['p95'] / 1000:.2f} s")


if __name__ == "__main__":
    main()
