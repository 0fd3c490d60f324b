"""Held-out search score before and after adapting, per method, over 3 seeds; training seconds on this CPU.

    python benchmarks/adapt.py                       # the three sample sets
    python -m cnnviz datasets export fashion-mnist --out /data/fashion-mnist-test
    python benchmarks/adapt.py --folder /data/fashion-mnist-test --folder-holdout 0.9   # + 1,000 training images

For every set: the base model's features (extracted once, cached) of the input layers (``--layer``, default
``all``: the 8 taps side by side, ``--pooling`` avg or max) and of its embedding, then per seed a stratified
split (``--holdout`` of each class held out), the frozen score of the held-out images searching among
themselves with the embedding (avg-pooled, as search uses it), and per method the training time of
:func:`cnnviz.adapt.fit` (the code ``adapt`` runs, on training rows only) and the adapted score on the same
held-out images. The spread is the standard
deviation over seeds of the adapted score. Targets (issue #18): +10 points on ≥ 2 of the 3 sample sets,
≤ 60 s of training for 1,000 images, never a drop larger than the spread.

``finetune`` (the model's last block + an MLP, :mod:`cnnviz.adapt_finetune`) also needs the block's input maps:
they are extracted once (cached for a whole set; for ``--folder-subset`` kept in memory) and the seconds are
printed apart from training. ``--folder-subset N`` uses a stratified subset of N images of the folder (its
pooled features still come from the whole folder's cache), e.g. 2,000 images with ``--folder-holdout 0.5``:
1,000 training and 1,000 held-out images, when one pass over the whole folder is too slow here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from cnnviz import adapt_finetune as F  # noqa: E402
from cnnviz.adapt import (DEFAULT_LAYER, DEFAULT_POOLING, FINETUNE, METHODS, default_epochs, fit,  # noqa: E402
                          held_out_scores, input_layers, stack_layers, stratified_split)
from cnnviz.data import open_dataset  # noqa: E402
from cnnviz.features import extract_features  # noqa: E402
from cnnviz.workflows import get_model  # noqa: E402


def _subset_maps(loaded, ds, tap: str, rows: np.ndarray) -> np.ndarray:
    """Block-input maps of some images of a dataset (not cached: the cache holds whole datasets)."""
    import keras

    from cnnviz.data.images import load_for_model

    net = keras.Model(loaded.model.inputs, loaded.model.get_layer(tap).output)
    out = []
    for s in range(0, len(rows), 32):
        batch = np.stack([load_for_model(ds.items[i].path, loaded.spec.input_size, name=ds.items[i].id)
                          for i in rows[s : s + 32]])
        out.append(np.asarray(net.predict_on_batch(batch), np.float32).reshape(len(batch), -1))
    return np.vstack(out)


def run_set(ref: str, model: str, methods: list[str], seeds: list[int], holdout: float, epochs: int | None,
            is_folder: bool, layer: str = DEFAULT_LAYER, pooling: str = DEFAULT_POOLING, subset: int = 0) -> list[dict]:
    ds = open_dataset(images=ref) if is_folder else open_dataset(ref)
    loaded = get_model(model)
    emb = loaded.spec.embedding_layer
    labels = np.asarray([str(v) for v in ds.labels], dtype=object)
    keep = np.arange(len(labels))
    if subset and subset < len(labels):  # a stratified subset of the folder (seeded, the same for every seed)
        keep = stratified_split(labels, 1 - subset / len(labels), 12345).train
    frozen = np.asarray(extract_features(loaded, ds, [emb])[emb], np.float32)[keep]
    layers = input_layers(loaded.spec, layer)
    inputs = {n: np.asarray(v[keep]) for n, v in extract_features(loaded, ds, layers, pooling).items()}
    labels = labels[keep]
    maps = None
    map_seconds = 0.0
    if FINETUNE in methods:
        plan = F.tail_plan(loaded)
        t0 = time.perf_counter()
        maps = (_subset_maps(loaded, ds, plan.tap, keep) if len(keep) < len(ds.items)
                else F.block_input_maps(loaded, ds, plan.tap))
        map_seconds = time.perf_counter() - t0
        print(f"  {ds.name}: block-input maps of {len(keep)} images in {map_seconds:.0f} s", file=sys.stderr, flush=True)
    rows = {m: {"before": [], "after": [], "seconds": []} for m in methods}
    n_train = n_test = 0
    for seed in seeds:
        split = stratified_split(labels, holdout, seed)
        n_train, n_test = len(split.train), len(split.test)
        before = held_out_scores(frozen[split.test], labels[split.test])["mean_score"]
        x_train, blocks = stack_layers(inputs, layers, split.train)
        x_test = stack_layers(inputs, layers, split.test)[0]
        for m in methods:
            n_epochs = default_epochs(m) if epochs is None else epochs
            if m == FINETUNE:  # the code adapt runs: the block + head on training rows only
                fz, fb = stack_layers(inputs, plan.frozen_taps, split.train)
                t0 = time.perf_counter()
                ft, _ = F.fit_finetune(fz, maps[split.train], labels[split.train], plan, F.chain_configs(loaded, plan),
                                       [loaded.model.get_layer(n).get_weights() for n in plan.chain],
                                       F.map_shape(loaded, plan.tap), fb, pooling, n_epochs, seed)
                rows[m]["seconds"].append(time.perf_counter() - t0)
                after = ft(stack_layers(inputs, plan.frozen_taps, split.test)[0], maps[split.test])
            else:
                t0 = time.perf_counter()
                projection, _ = fit(x_train, labels[split.train], m, n_epochs, seed, blocks=blocks)
                rows[m]["seconds"].append(time.perf_counter() - t0)
                after = projection(x_test)
            rows[m]["before"].append(before)
            rows[m]["after"].append(held_out_scores(after, labels[split.test])["mean_score"])
            print(f"  {ds.name} seed {seed} {m}: {before:.1f} -> {rows[m]['after'][-1]:.1f} "
                  f"({rows[m]['seconds'][-1]:.1f} s)", file=sys.stderr, flush=True)
    out = []
    for m, r in rows.items():
        gains = [a - b for a, b in zip(r["after"], r["before"])]
        spread = statistics.stdev(r["after"]) if len(r["after"]) > 1 else 0.0
        out.append({"set": ds.name + (f" ({len(keep)} of {len(ds.items)})" if len(keep) < len(ds.items) else ""),
                    "method": m, "map_seconds": map_seconds if m == FINETUNE else 0.0, "layer": layer, "pooling": pooling, "train_images": n_train, "held_out_images": n_test,
                    "before": statistics.mean(r["before"]), "after": statistics.mean(r["after"]),
                    "gain": statistics.mean(gains), "gain_min": min(gains), "spread_sd": spread,
                    "train_s_median": statistics.median(r["seconds"]), "train_s_max": max(r["seconds"])})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--sets", default="stamps,emoji3d,fashion")
    ap.add_argument("--folder", help="also a labelled folder of your own (e.g. Fashion-MNIST's test split)")
    ap.add_argument("--folder-holdout", type=float, default=0.9, help="held-out share for --folder (0.9 of 10,000 = 1,000 training)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--holdout", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=None, help="default: each method's own (finetune 40, others 150)")
    ap.add_argument("--folder-subset", type=int, default=0,
                    help="use a stratified subset of this many folder images (block-input maps for finetune)")
    ap.add_argument("--layer", default=DEFAULT_LAYER, help="input layer(s): all (default), embedding, a name or a comma list")
    ap.add_argument("--pooling", default=DEFAULT_POOLING, choices=("avg", "max"))
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    methods, seeds = args.methods.split(","), [int(s) for s in args.seeds.split(",")]
    rows = []
    for ref in [s for s in args.sets.split(",") if s]:
        rows += run_set(ref, args.model, methods, seeds, args.holdout, args.epochs, False, args.layer, args.pooling)
    if args.folder:
        rows += run_set(args.folder, args.model, methods, seeds, args.folder_holdout, args.epochs, True, args.layer,
                        args.pooling, args.folder_subset)
    print(f"model {args.model} · input {args.layer}, {args.pooling}-pooled · before: frozen embedding · seeds {args.seeds}"
          f" · epochs {args.epochs or 'per method'} · {os.cpu_count()} CPUs · nice {os.nice(0)}"
          f" · load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| set | method | train / held-out images | before | after | gain (min over seeds) | spread (sd) | train s (median, max) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        flag = " **drop**" if r["gain_min"] < -r["spread_sd"] else ""
        print(f"| {r['set']} | {r['method']} | {r['train_images']} / {r['held_out_images']} | {r['before']:.1f} | "
              f"{r['after']:.1f} | {r['gain']:+.1f} ({r['gain_min']:+.1f}){flag} | {r['spread_sd']:.1f} | "
              f"{r['train_s_median']:.1f}, {r['train_s_max']:.1f} |")
    for r in rows:
        if r["map_seconds"]:
            print(f"{r['set']}: finetune's block-input maps took {r['map_seconds']:.0f} s to extract (once per set)")
    samples = [s for s in args.sets.split(",") if s]
    best = {s: max((r for r in rows if r["set"] == s), key=lambda r: r["gain"]) for s in samples}
    hits = [s for s, r in best.items() if r["gain"] >= 10]
    print(f"\n+10 points (best method, mean over seeds) on {len(hits)} of {len(samples)} sample sets: "
          + ", ".join(f"{s} {r['gain']:+.1f} ({r['method']})" for s, r in best.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
