"""The dashboard at collection scale: a real streamlit server and real chromium on one image folder.

    python benchmarks/ui_scale.py --images /work/data/fashion-mnist-test [--repeats 10] [--view thumbnails|list] [--json]

The folder's features must be precomputed first (``python -m cnnviz precompute --images DIR --model M``);
the script refuses to start otherwise, so no timing includes feature extraction. The server gets
``CNNVIZ_DATA_ROOTS`` = the folder's parent and each browser session opens it through a link
(``/?dataset=DIR``), as a user sending a colleague a view would.

Timings are in the browser (action → what a user waits for is on screen, images decoded) and, where the
app reports it, on the server (the script time shown in the sidebar; for a click or a gallery page, the time of
Home's results-and-gallery fragment, which reruns alone, shown under the gallery). "cold" = the first time after the
server started (dataset scan, features, index, thumbnails made); p50/p95 are over the warm repeats.
  - home first render: a new session opens the link → the gallery sheet is loaded
  - click → results: a click on a gallery image → "Most similar to <that image>" and all result images loaded
  - gallery page switch: the next-page button → the new sheet is loaded
  - search page ready: a new session opens /search?dataset=… → its default view is final: dataset figures with
    the per-class chart and the gallery (cold: the first session computes the figures in the background)
  - feature map tab: on a ready Search page, a click on the "Feature map" tab → the UMAP map is drawn (cold: the
    server's first map of this folder, UMAP's numba compile and fit included)
  - page switch: sidebar link Search → Home and Home → Search, until the page is ready
  - Streamlit floor: a one-line Streamlit app opened in a new session on the same machine and browser, the
    cost of any Streamlit page before cnnviz does anything (frontend download and compile, websocket, one run)
Server RSS is read from /proc before the first session and after the last.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHROMIUM = "/usr/bin/chromium"
PER_CLASS = "table.cnnviz-per-class td"  # the Search page's per-class table (cnnviz/ui/charts.per_class_html)
SHEET = "img[data-testid='cnnvizSheet']"  # the gallery page: one image in the page (cnnviz/ui/sheet.py)
RESULTS_LOADED = """q => { const h = [...document.querySelectorAll('h3')].find(e => e.innerText.startsWith('Most similar to'));
    if (!h || h.innerText.replace('Most similar to', '').trim() !== q) return false;
    const imgs = [...document.querySelectorAll("[data-testid='stImage'] img, .cnnviz-hit > img")];
    return imgs.length >= 16 && imgs.every(i => i.complete && i.naturalWidth > 0); }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, data_root: Path | None = None, script: str | Path = "app.py") -> subprocess.Popen:
    """``streamlit run app.py`` (or ``script``) on 127.0.0.1:port (optionally with CNNVIZ_DATA_ROOTS), once healthy."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if data_root is not None:
        env["CNNVIZ_DATA_ROOTS"] = str(data_root)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(240):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("streamlit did not start")


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (``state`` first), or None once it has exited."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _ticks(pid: int) -> int:
    """User + system CPU ticks of one process so far (0 once it has exited)."""
    fields = _stat_fields(pid)
    return int(fields[11]) + int(fields[12]) if fields else 0


def _browser_pids() -> list[int]:
    """Chromium's processes started by this benchmark: every descendant of this process except playwright's
    node driver (the harness, not the browser)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            try:
                if "chrom" in (Path(f"/proc/{child}/comm").read_text()):
                    found.append(child)
            except OSError:
                pass
    return found


class CpuMeter:
    """CPU seconds the browser (all its processes) and the server used between ``start()`` and ``stop()``. Unlike
    a wall-clock time it leaves out waiting while other work holds the cores (a slower host CPU still raises it),
    so its ratio to the one-line app's in the same run shows what a page costs."""

    def __init__(self, server_pid: int | None):
        self.server_pid = server_pid

    def start(self) -> None:
        self._browser = {pid: _ticks(pid) for pid in _browser_pids()}
        self._server = _ticks(self.server_pid) if self.server_pid else 0

    def stop(self) -> dict:
        hz = os.sysconf("SC_CLK_TCK")
        pids = set(self._browser) | set(_browser_pids())  # a new tab's renderer counts from zero
        browser = sum(_ticks(pid) - self._browser.get(pid, 0) for pid in pids) / hz
        server = (_ticks(self.server_pid) - self._server) / hz if self.server_pid else 0.0
        return {"browser_cpu_s": browser, "server_cpu_s": server}


def _cpu_stats(loads: list[dict]) -> dict:
    """p50/p95 of each of :meth:`CpuMeter.stop`'s figures over ``loads``."""
    return {k: _stats([load[k] for load in loads]) for k in ("browser_cpu_s", "server_cpu_s")}


def machine_ticks() -> tuple[int, int]:
    """(all CPU ticks, "steal" ticks) of the machine so far, from /proc/stat: steal is time the hypervisor gave to
    other virtual machines while this one wanted to run."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields[:8]), fields[7]


def cell_position(box: dict, n: int) -> tuple[float, float]:
    """Where to click (relative to the sheet image's box) to hit the n-th image of a gallery page."""
    from cnnviz.gallery import PER_PAGE, SheetLayout

    layout = SheetLayout()
    scale = box["width"] / layout.size(PER_PAGE)[0]
    return (((n % layout.columns) * layout.pitch_x + layout.cell / 2) * scale,
            ((n // layout.columns) * layout.pitch_y + layout.cell / 2) * scale)


def check_features(images: Path, model: str) -> list[str]:
    """The folder's image ids; exits with a message when its features are not precomputed."""
    from cnnviz import cache
    from cnnviz.data.folder import scan_folder
    from cnnviz.features import feature_key
    from cnnviz.workflows import get_model

    ds = scan_folder(images)
    loaded = get_model(model)
    key = feature_key(ds.digest(), loaded, loaded.spec.embedding_layer, "avg")
    if cache.load_matrix("features", key) is None:
        raise SystemExit(f"features of {images} are not cached: run python -m cnnviz precompute --images {images} --model {model}")
    return ds.ids


def _sheet_src(pg) -> str | None:
    """The loaded sheet's src (a data URI) once its image is decoded, else None."""
    try:
        return pg.locator(SHEET).first.evaluate("i => (i.complete && i.naturalWidth > 0) ? i.src : null", timeout=500)
    except Exception:  # the sheet is not there yet
        return None


def wait_sheet(pg, previous: str | None = None, timeout: float = 300.0) -> str:
    """Wait until the gallery sheet shows a decoded image other than ``previous``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        src = _sheet_src(pg)
        if src and src != previous:
            return src
        pg.wait_for_timeout(15)
    raise TimeoutError("the gallery sheet did not load")


HOME_PART = "the results and gallery"  # Home reruns this fragment alone on a click or a gallery page


def server_ms(pg, part: str = "this page") -> float | None:
    """The script time the app shows for the run that just finished (read once the run ended): the whole page's
    in the sidebar, or a fragment's (``part``, e.g. :data:`HOME_PART`) under it."""
    pg.locator("[data-testid='stStatusWidget']").wait_for(state="hidden", timeout=300_000)
    text = pg.get_by_text(f"server time for {part}").first.inner_text()
    m = re.search(r"(\d+) ms", text)
    return float(m.group(1)) if m else None


def _settled(pg, ms: float) -> None:
    """No background job or compile notice left on the page."""
    pg.wait_for_function("""() => !document.body.innerText.includes('in the background')
        && !document.body.innerText.includes('UMAP is compiling')""", timeout=ms, polling=50)


def _search_ready(pg, timeout: float = 600.0) -> None:
    """The page's default view final: the dataset figures with their per-class chart, and the gallery sheet."""
    ms = timeout * 1000
    pg.get_by_text("Mean search score").first.wait_for(timeout=ms)
    pg.locator(PER_CLASS).last.wait_for(timeout=ms)
    _settled(pg, ms)
    wait_sheet(pg, timeout=timeout)


def _map_ready(pg, timeout: float = 600.0) -> None:
    """The Feature map tab final: the UMAP map drawn (not PCA meanwhile)."""
    ms = timeout * 1000
    pg.get_by_text("Hover a point to see the image").first.wait_for(timeout=ms)  # under the map
    pg.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg").last.wait_for(timeout=ms)
    _settled(pg, ms)


def map_tab(pg, repeats: int) -> dict:
    """On a ready Search page: open the Feature map tab until the map is final, then back to the figures, repeated.
    The first opening is cold when this server has not drawn this map yet (UMAP's compile and fit)."""
    opened, back, server, cold = [], [], [], None
    for r in range(repeats + 1):
        t = time.perf_counter()
        pg.get_by_role("tab", name="Feature map").click()
        _map_ready(pg)
        dt = 1000 * (time.perf_counter() - t)
        if r:
            opened.append(dt)
            server.append(server_ms(pg))
        else:
            cold = {"browser_ms": dt, "server_ms": server_ms(pg)}
        t = time.perf_counter()
        pg.get_by_role("tab", name="Dataset figures").click()
        pg.get_by_text("Mean search score").first.wait_for(timeout=600_000)
        pg.locator(PER_CLASS).last.wait_for()
        back.append(1000 * (time.perf_counter() - t))
    return {"cold": cold, "browser": _stats(opened), "server": _stats([s for s in server if s]),
            "back to the figures": {"browser": _stats(back[1:])}}


def _home_ready(pg, timeout: float = 600.0) -> None:
    pg.get_by_text("click one").first.wait_for(timeout=timeout * 1000)
    wait_sheet(pg, timeout=timeout)


def _stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {"n": len(values), "p50": statistics.median(values), "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]}


def _log(step: str, value: dict) -> None:
    """Each finished step at once on stderr, so a run stopped by a time limit still reports what it measured."""
    print(f"[ui_scale] {step}: {json.dumps(value)}", file=sys.stderr, flush=True)


def _new_sessions(new_page, url: str, ready, runs: int, keep_last: bool = False, progress: str | None = None,
                  close=lambda pg: pg.context.close(), cold_first: bool = True, server_pid: int | None = None):
    """Open ``url`` in ``runs`` new sessions until ``ready(page)``; the first is cold (unless ``cold_first`` is
    false: the server already did that work), the rest are timed.

    Returns ``({cold, browser, server, cpu_s}, the last page if keep_last else None)``: ``cpu_s`` is the CPU
    seconds per warm load of the browser's processes and of the server (``server_pid``); ``progress`` names a
    partial result logged before each warm run (slow steps report what they have so far).
    """
    shown, server, cpu, cold, pg = [], [], [], None, None
    meter = CpuMeter(server_pid)
    for r in range(runs):
        if r and progress:
            _log(progress, {"cold": cold, "browser": _stats(shown)})
        pg = new_page()
        meter.start()
        t = time.perf_counter()
        pg.goto(url)
        ready(pg)
        dt = 1000 * (time.perf_counter() - t)
        used = meter.stop()
        if r == 0 and cold_first:
            cold = {"browser_ms": dt, "server_ms": server_ms(pg)}
        else:
            shown.append(dt)
            server.append(server_ms(pg))
            cpu.append(used)
        if not (keep_last and r == runs - 1):
            close(pg)
    result = {"cold": cold, "browser": _stats(shown), "server": _stats([s for s in server if s]),
              "cpu_s": _cpu_stats(cpu) if cpu else {}}
    return result, (pg if keep_last else None)


def same_tab_loads(context, url: str, ready, runs: int, server_pid: int | None = None) -> dict:
    """``url`` loaded ``runs`` times in one open tab (a link followed there, or a reload): a new Streamlit session
    each time, without a new tab's renderer process (~1 CPU-s per tab on this 2-core VM, docs/scale.md)."""
    pg = context.new_page()
    pg.goto(url)  # the tab's first load is a new tab's: not timed
    ready(pg)
    result, _ = _new_sessions(lambda: pg, url, ready, runs, close=lambda _: None, cold_first=False, server_pid=server_pid)
    pg.close()
    return result


FLOOR_APP = 'import streamlit as st\nst.write("floor ready")\n'


def streamlit_floor(runs: int) -> dict:
    """New-session render of a one-line Streamlit app on the same machine and browser: what any Streamlit page
    costs before cnnviz does anything (loading the frontend, the websocket, one script run)."""
    import tempfile

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "floor.py"
        script.write_text(FLOOR_APP)
        port = free_port()
        server = start_server(port, script=script)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                fresh, cached, cpu = [], [], {True: [], False: []}
                meter = CpuMeter(server.pid)
                for r in range(runs + 1):
                    for fresh_browser, times in ((True, fresh), (False, cached)):
                        pg = (browser.new_context(viewport={"width": 1400, "height": 1000}) if fresh_browser
                              else context).new_page()
                        meter.start()
                        t = time.perf_counter()
                        pg.goto(f"http://127.0.0.1:{port}/")
                        pg.get_by_text("floor ready").wait_for()
                        dt, used = 1000 * (time.perf_counter() - t), meter.stop()
                        if r:  # the first is the server's cold start
                            times.append(dt)
                            cpu[fresh_browser].append(used)
                        (pg.context if fresh_browser else pg).close()
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {"empty browser cache": {"browser": _stats(fresh), "cpu_s": _cpu_stats(cpu[True])},
            "browser cache warm": {"browser": _stats(cached), "cpu_s": _cpu_stats(cpu[False])}}


def measure(base: str, images: Path, ids: list[str], repeats: int, view: str, out: dict, seed: int = 0,
            server_pid: int | None = None) -> dict:
    """Fill ``out`` step by step (a stopped run keeps the finished steps)."""
    from playwright.sync_api import sync_playwright

    rng = random.Random(seed)
    link = f"?dataset={quote(str(images))}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])

        def new_page():
            return browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()

        returning = browser.new_context(viewport={"width": 1400, "height": 1000})  # a browser that has been here

        # Home first render: each repeat is a new session. Empty browser cache: a new browser context (a first
        # visit: Streamlit's frontend is downloaded and compiled); cache warm: a new tab of one context.
        out["home first render (cache warm)"], _ = _new_sessions(
            returning.new_page, base + "/" + link, _home_ready, repeats + 1, close=lambda pg: pg.close(),
            server_pid=server_pid)
        _log("home first render (cache warm)", out["home first render (cache warm)"])
        out["home first render (empty cache)"], pg = _new_sessions(new_page, base + "/" + link, _home_ready, repeats + 1,
                                                                   keep_last=True, server_pid=server_pid)
        _log("home first render (empty cache)", out["home first render (empty cache)"])

        if view == "list":
            pg.get_by_role("button", name="list").click()
            pg.locator("[data-testid='stDataFrame']").first.wait_for()

        # Click → results (thumbnail view): a different image of page 1 each time.
        if view == "thumbnails":
            shown, server, cells = [], [], rng.sample(range(60), repeats + 1)
            for r, n in enumerate(cells):
                box = pg.locator(SHEET).first.bounding_box()
                x, y = cell_position(box, n)
                t = time.perf_counter()
                pg.locator(SHEET).first.click(position={"x": x, "y": y}, no_wait_after=True)
                pg.wait_for_function(RESULTS_LOADED, arg=ids[n], timeout=300_000, polling=15)
                dt = 1000 * (time.perf_counter() - t)
                if r:  # the first click builds the search index: cold
                    shown.append(dt)
                    server.append(server_ms(pg, HOME_PART))
                else:
                    out["click → results"] = {"cold": {"browser_ms": dt, "server_ms": server_ms(pg, HOME_PART)}}
            out["click → results"].update(browser=_stats(shown), server=_stats([s for s in server if s]))
            _log("click → results", out["click → results"])

        # Gallery page switch: next page until the new page is on screen.
        shown, server = [], []
        for r in range(repeats):
            first = (r + 1) * 60 + 1
            t = time.perf_counter()
            if view == "thumbnails":
                before = wait_sheet(pg)
                pg.get_by_role("button", name="chevron_right").first.click()
                wait_sheet(pg, previous=before)
            else:
                pg.get_by_role("button", name="chevron_right").first.click()
                pg.get_by_text(f"Images {first:,}–").first.wait_for(timeout=120_000)
                pg.locator("[data-testid='stDataFrame']").first.wait_for()
            shown.append(1000 * (time.perf_counter() - t))
            pg.get_by_text(f"Images {first:,}–").first.wait_for(timeout=120_000)
            server.append(server_ms(pg, HOME_PART))
        out[f"gallery page switch ({view})"] = {"browser": _stats(shown), "server": _stats([s for s in server if s])}
        _log(f"gallery page switch ({view})", out[f"gallery page switch ({view})"])

        if view == "thumbnails":
            # Search page ready in a new session (cold the first time: the dataset figures). That first page then
            # opens the Feature map tab (cold: UMAP's one-off compile and fit, which the first visit starts in the
            # background), so the warm repeats after it measure the steady state, not a page sharing the 2 cores
            # with numba's compiler.
            t = time.perf_counter()
            tab = returning.new_page()
            tab.goto(base + "/search" + link)
            _search_ready(tab)
            search_cold = {"browser_ms": 1000 * (time.perf_counter() - t), "server_ms": server_ms(tab)}
            out["feature map tab → map drawn"] = map_tab(tab, max(2, repeats // 2))
            _log("feature map tab → map drawn", out["feature map tab → map drawn"])
            tab.close()
            out["search page ready (cache warm)"], _ = _new_sessions(
                returning.new_page, base + "/search" + link, _search_ready, max(2, repeats // 2),
                progress="search page ready (so far)", close=lambda pg: pg.close(), cold_first=False,
                server_pid=server_pid)
            out["search page ready (cache warm)"]["cold"] = search_cold
            _log("search page ready (cache warm)", out["search page ready (cache warm)"])
            out["search page ready (empty cache)"], _ = _new_sessions(new_page, base + "/search" + link, _search_ready,
                                                                      max(2, repeats // 2), cold_first=False,
                                                                      server_pid=server_pid)
            _log("search page ready (empty cache)", out["search page ready (empty cache)"])
            out["search page ready (same tab, loaded again)"] = same_tab_loads(
                returning, base + "/search" + link, _search_ready, max(2, repeats // 2), server_pid)
            _log("search page ready (same tab, loaded again)", out["search page ready (same tab, loaded again)"])

            # Page switch through the sidebar: Home → Search → Home …
            shown, server = [], []
            for r in range(repeats):
                to_search = r % 2 == 0
                t = time.perf_counter()
                pg.get_by_role("link", name="Search (advanced)" if to_search else "Home: image search").click()
                (_search_ready if to_search else _home_ready)(pg)
                shown.append(1000 * (time.perf_counter() - t))
                server.append(server_ms(pg))
            out["page switch (Home ↔ Search)"] = {"browser": _stats(shown), "server": _stats([s for s in server if s])}
            _log("page switch (Home ↔ Search)", out["page switch (Home ↔ Search)"])
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", required=True, type=Path, help="an ImageFolder whose features are precomputed")
    ap.add_argument("--model", default="efficientnet_lite0", help="the model the dashboard opens with (its default)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--view", choices=("thumbnails", "list"), default="thumbnails", help="gallery view to measure")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    images = args.images.expanduser().resolve()
    ids = check_features(images, args.model)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped (SIGTERM): reporting the steps measured so far"))
    port = free_port()
    server = start_server(port, images.parent)
    results: dict[str, dict] = {}
    before = rss_mb(server.pid)
    after = float("nan")
    ticks_before = machine_ticks()
    try:
        measure(f"http://127.0.0.1:{port}", images, ids, args.repeats, args.view, results, server_pid=server.pid)
        for name, value in streamlit_floor(args.repeats).items():
            results[f"Streamlit floor: one-line app, new session ({name})"] = value
            _log(f"Streamlit floor ({name})", value)
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        print(f"[ui_scale] stopped early: {exc!r}", file=sys.stderr)
    finally:
        after = rss_mb(server.pid)
        server.terminate()
        server.wait(timeout=30)
    all_ticks, steal_ticks = (b - a for a, b in zip(ticks_before, machine_ticks()))
    steal = 100.0 * steal_ticks / all_ticks if all_ticks else None
    report = {"images": str(images), "n": len(ids), "model": args.model, "repeats": args.repeats, "view": args.view,
              "cpus": os.cpu_count(), "steal_percent": steal, "server_rss_mb": {"before": before, "after": after},
              "results": results}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{images} ({len(ids):,} images), {args.model}; server and chromium on this machine ({os.cpu_count()} CPUs); "
          f"{args.repeats} warm repeats")
    print("| step | cold browser | p50 browser | p95 browser | p50 server | p95 server |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        cold = r.get("cold") or {}
        b, s = r["browser"], r.get("server", {})
        fmt = lambda v: "–" if v is None else f"{v / 1000:.2f} s"
        print(f"| {name} | {fmt(cold.get('browser_ms'))} | {fmt(b.get('p50'))} | {fmt(b.get('p95'))} | "
              f"{fmt(s.get('p50'))} | {fmt(s.get('p95'))} |")
    print(f"server RSS: {before:.0f} MB before the first session, {after:.0f} MB after")
    if steal is not None:
        print(f"CPU steal (time the hypervisor gave to other machines) during the run: {steal:.1f}%")
    print_cpu_table(results)


def print_cpu_table(results: dict) -> None:
    """CPU seconds per new-session load (p50), browser and server, against the one-line app's in the same run."""
    floors = {empty: results.get(f"Streamlit floor: one-line app, new session ({name})", {}).get("cpu_s")
              for empty, name in ((True, "empty browser cache"), (False, "browser cache warm"))}
    print("\n| page load, CPU seconds p50 | browser (all processes) | server | together | × the one-line app's |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        cpu = r.get("cpu_s")
        if not cpu or not cpu["browser_cpu_s"].get("n"):
            continue
        b, s = cpu["browser_cpu_s"]["p50"], cpu["server_cpu_s"]["p50"]
        floor = floors["empty cache" in name or "empty browser cache" in name]
        ratio = "–"
        if floor and floor["browser_cpu_s"].get("n"):
            ratio = f"{(b + s) / (floor['browser_cpu_s']['p50'] + floor['server_cpu_s']['p50']):.2f}"
        print(f"| {name} | {b:.2f} | {s:.2f} | {b + s:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
