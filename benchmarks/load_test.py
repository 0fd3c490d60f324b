"""Load test: interaction latency with N concurrent browser sessions (localhost only, bounded in time).

    python benchmarks/load_test.py [--sessions 8] [--duration 60] [--port 0] [--images DIR]

Starts the dashboard on 127.0.0.1, opens N headless Debian-chromium pages (one
Streamlit session each; with ``--images`` each opens that folder through a link,
its features precomputed) and has every page click random gallery images on Home for
``--duration`` seconds, with ``--think`` seconds between a result and the next click (a seeded
uniform pause of 0.5–1.5 × think: a person looks at the results; 0 = back to back, a saturation
test). Latency = click → the browser has painted the new result
header ("Most similar to …"), so it includes the server run, the websocket
and rendering. The first click of each page (cold caches) is not counted.
For the ratio, the same is measured with 1 session first, in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from ui_scale import HOME_PART, SHEET, cell_position, check_features, free_port, start_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
# The harness shares the 2 cores with what it measures, so each click costs it one mouse event and three small
# scripts in the page (no playwright locator, whose actionability checks and text scans ran several times per
# click): where the sheet is, the new result header once painted, the server time once the run ended.
SHEET_BOX = """sheet => { const i = document.querySelector(sheet);
    if (!i) return null; i.scrollIntoView({block: 'nearest'}); const r = i.getBoundingClientRect();
    return r.width ? {x: r.left, y: r.top, width: r.width, height: r.height} : null; }"""
_WHEN = """(test, then) => new Promise(resolve => {
    const check = () => { const v = test(); if (v === null) return false;
                          obs.disconnect(); requestAnimationFrame(() => requestAnimationFrame(() => resolve(then(v)))); return true; };
    const obs = new MutationObserver(check);
    if (!check()) obs.observe(document.body, {childList: true, subtree: true, characterData: true, attributes: true});
})"""
NEW_HEADER = f"""prev => ({_WHEN})(() => {{
    const h = [...document.querySelectorAll('h3')].find(e => e.textContent.startsWith('Most similar to'));
    return h && h.textContent !== prev ? h.textContent : null; }}, v => v)"""  # resolves once the frame is painted
RUN_TIME = f"""part => ({_WHEN})(() => document.querySelector("[data-testid='stStatusWidget']") ? null : true,
    () => {{ const c = [...document.querySelectorAll('p')].find(e => e.textContent.includes('server time for ' + part));
            return c ? c.textContent : ''; }})"""


async def open_session(browser, url: str):
    """A new browser context (= a new Streamlit session) on Home, with its gallery sheet loaded: its page."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    await page.goto(url, timeout=300_000)  # playwright's default 30 s is too short for 8 tabs on 2 shared cores
    await page.get_by_text("click one").wait_for(timeout=300_000)
    await page.locator(SHEET).first.wait_for(timeout=300_000)
    return page


async def click_loop(page, until: float, seed: int, think: float = 0.0) -> tuple[list[float], list[float]]:
    """(click → result shown, server script time as the app reports it under the gallery) per click, in ms."""
    from cnnviz.gallery import PER_PAGE

    rng, latencies, server, header, last = random.Random(seed), [], [], "", None
    while time.time() < until:
        n = rng.choice([i for i in range(PER_PAGE) if i != last])  # another image: a new result header
        last = n
        box = None
        while box is None:  # the sheet may be re-laid out just after a rerun
            box = await page.evaluate(SHEET_BOX, SHEET)
            if box is None:
                await page.wait_for_timeout(20)
        x, y = cell_position(box, n)
        started = time.perf_counter()
        await page.mouse.click(box["x"] + x, box["y"] + y)
        header = await asyncio.wait_for(page.evaluate(NEW_HEADER, header), 120)
        latencies.append(1000 * (time.perf_counter() - started))
        text = await asyncio.wait_for(page.evaluate(RUN_TIME, HOME_PART), 120)
        server.append(float(re.search(r"(\d+) ms", text).group(1)))
        if think:
            await page.wait_for_timeout(1000 * think * rng.uniform(0.5, 1.5))
    return latencies[1:], server[1:]  # the first click warms this session's caches


async def run(url: str, sessions: int, duration: float, think: float = 0.0) -> list[tuple[list[float], list[float]]]:
    """Open every session first, then let all of them click for ``duration`` seconds at once."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        # One after another: eight first renders at once on 2 cores measure chromium's start-up, not the clicks.
        opened = [await open_session(browser, url) for _ in range(sessions)]
        until = time.time() + duration
        results = await asyncio.gather(*(click_loop(page, until, seed, think) for seed, page in enumerate(opened)))
        await browser.close()
    return list(results)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(per_session: list[tuple[list[float], list[float]]]) -> dict:
    shown = [x for s in per_session for x in s[0]]
    server = [x for s in per_session for x in s[1]]
    if not shown:
        return {"clicks": 0}
    return {"clicks": len(shown), "p50_ms": statistics.median(shown), "p95_ms": _p(shown, 0.95),
            "server_p50_ms": statistics.median(server), "server_p95_ms": _p(server, 0.95)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of clicking per phase")
    ap.add_argument("--think", type=float, default=0.0,
                    help="mean seconds a user looks at results before the next click (0: back to back)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--images", type=Path, help="an image folder (features precomputed) instead of the stamps sample")
    args = ap.parse_args()
    images = args.images.expanduser().resolve() if args.images else None
    if images is not None:
        check_features(images, "efficientnet_lite0")
    port = args.port or free_port()
    server = start_server(port, images.parent if images else None)
    try:
        url = f"http://127.0.0.1:{port}/" + (f"?dataset={quote(str(images))}" if images else "")
        asyncio.run(run(url, 1, 15))  # server warm-up: model, features, index, thumbnails
        single = summary(asyncio.run(run(url, 1, args.duration, args.think)))
        many = summary(asyncio.run(run(url, args.sessions, args.duration, args.think)))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"Home ({images or 'stamps'}): click a gallery image → results shown in the browser; {os.cpu_count()} CPU cores, "
          f"server and browsers on this machine; think time {args.think:g} s")
    for label, r in (("1 session ", single), (f"{args.sessions} sessions", many)):
        if not r["clicks"]:
            print(f"  {label}: no click finished within the duration")
            continue
        print(f"  {label}: {r['clicks']} clicks; shown in browser p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms; "
              f"server script p50 {r['server_p50_ms']:.0f} ms, p95 {r['server_p95_ms']:.0f} ms")
    if single["clicks"] and many["clicks"]:
        print(f"  p50 ratio, {args.sessions} sessions / 1: {many['p50_ms'] / single['p50_ms']:.2f}× shown, "
              f"{many['server_p50_ms'] / single['server_p50_ms']:.2f}× server")


if __name__ == "__main__":
    main()
