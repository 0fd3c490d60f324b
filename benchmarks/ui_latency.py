"""Warm interaction latency of the dashboard, measured server-side with AppTest.

    python benchmarks/ui_latency.py [--repeats 5]

Each interaction (change metric, change layer, pick a new query) is one full
script rerun of the Search page — what the server does for a browser click —
after a warm-up run has filled the caches. "server" is the script time the app
itself records (app.py start → page end, also shown in the sidebar); "AppTest"
adds the test harness' own overhead. Target: server < 300 ms.
Neither includes browser rendering or network time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from streamlit.testing.v1 import AppTest

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.run()
    at.switch_page("app_pages/search.py").run()
    at.radio(key="search.projection").set_value("pca").run()
    from cnnviz.data import open_dataset
    from cnnviz.ui.state import LAST_RUN_MS, QUERY

    queries = open_dataset("stamps").ids
    metrics, layers = ["cosine", "euclidean"], ["avg_pool", "block6d_out"]
    from cnnviz.projection import umap_ready

    deadline = time.time() + 300
    while not umap_ready() and time.time() < deadline:  # the background numba compile would skew timings
        time.sleep(1)
    at.session_state[QUERY] = queries[0]
    at.run()
    for layer in layers:  # warm every combination once: features, reports and projections cached
        at.selectbox(key="search.layer").set_value(layer).run()
        for metric in metrics:
            at.selectbox(key="search.metric").set_value(metric).run()
    assert not at.exception, at.exception

    def set_query(q):
        at.session_state[QUERY] = q
        return at.run()

    actions = {
        "change metric": lambda i: at.selectbox(key="search.metric").set_value(metrics[i % 2]).run(),
        "change layer": lambda i: at.selectbox(key="search.layer").set_value(layers[i % 2]).run(),
        "pick a new query": lambda i: set_query(queries[1 + 7 * i]),
    }
    server, harness = {n: [] for n in actions}, {n: [] for n in actions}
    for i in range(args.repeats):
        for name, act in actions.items():
            t = time.perf_counter()
            act(i)
            harness[name].append(1000 * (time.perf_counter() - t))
            assert not at.exception, at.exception
            server[name].append(at.session_state[LAST_RUN_MS])
    print(f"Search page (stamps, efficientnet_lite0), warm, {args.repeats} repeats each:")
    for name in actions:
        print(f"  {name:<17} server median {statistics.median(server[name]):5.0f} ms (max {max(server[name]):4.0f})"
              f"   AppTest median {statistics.median(harness[name]):5.0f} ms   target: server < 300 ms")


if __name__ == "__main__":
    main()
