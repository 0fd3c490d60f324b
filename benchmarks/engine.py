"""Engine benchmark: multi-layer extraction vs a bare forward pass, and exact search speed.

    python benchmarks/engine.py [--model efficientnet_lite0] [--batches 8] [--n 10000] [--dim 1280]

Prints, measured in this one run on this machine:
  * throughput of one forward pass that returns all 8 pooled layers (batch 32),
    as a ratio of a bare ``predict_on_batch`` loop of the same model
    (target ≥ 0.9: tapping layers must cost next to nothing);
  * time of one exact top-15 query over N × D float32 features per metric
    (target ≤ 5 ms for cosine at 10k × 1280).
Inputs are random pixels/features: speed does not depend on content.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def bench_extraction(model_name: str, batches: int, batch_size: int = 32) -> dict:
    from cnnviz.features import get_extractor
    from cnnviz.workflows import get_model

    loaded = get_model(model_name)
    extractor = get_extractor(loaded, loaded.spec.layers, "avg")
    size = loaded.spec.input_size
    x = np.random.default_rng(0).uniform(0, 255, (batch_size, size, size, 3)).astype(np.float32)
    for _ in range(2):  # warm-up: tracing and allocation
        loaded.model.predict_on_batch(x)
        extractor(x)
    bare, multi = [], []
    for _ in range(batches):  # interleaved so drift affects both equally
        t = time.perf_counter(); loaded.model.predict_on_batch(x); bare.append(time.perf_counter() - t)
        t = time.perf_counter(); extractor(x); multi.append(time.perf_counter() - t)
    bare_ips, multi_ips = batch_size / statistics.median(bare), batch_size / statistics.median(multi)
    return {"model": model_name, "layers": len(loaded.spec.layers), "batch": batch_size,
            "bare_img_s": bare_ips, "multi_layer_img_s": multi_ips, "ratio": multi_ips / bare_ips}


def bench_search(n: int, dim: int, repeats: int = 30) -> list[dict]:
    from cnnviz.search import METRICS, ExactIndex

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(n, dim)).astype(np.float32)
    rows = []
    for metric in METRICS:
        index = ExactIndex(feats, metric, p=3.0 if metric == "minkowski" else None)
        reps = repeats if metric in ("cosine", "euclidean", "sqeuclidean", "inner_product") else 5
        times = []
        for i in range(reps + 1):
            q = feats[[i]]
            t = time.perf_counter()
            index.search(q, 15, exclude=np.array([i]))
            times.append(time.perf_counter() - t)
        rows.append({"metric": metric, "ms_median": 1000 * statistics.median(times[1:])})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=1280)
    args = ap.parse_args()
    import tensorflow as tf

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, TF {tf.__version__}, GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    e = bench_extraction(args.model, args.batches)
    print(f"extraction {e['model']}, {e['layers']} layers, batch {e['batch']}: bare {e['bare_img_s']:.1f} img/s, "
          f"multi-layer {e['multi_layer_img_s']:.1f} img/s, ratio {e['ratio']:.3f} (target ≥ 0.9)")
    for r in bench_search(args.n, args.dim):
        print(f"exact top-15 query, {args.n} × {args.dim}, {r['metric']:<13}: {r['ms_median']:.2f} ms")
    print("target: cosine ≤ 5 ms")


if __name__ == "__main__":
    main()
