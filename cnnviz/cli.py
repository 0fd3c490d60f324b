"""``python -m cnnviz``: every dashboard operation as a command.

Each subcommand calls one function of :mod:`cnnviz.workflows` and prints a
table, or JSON with ``--json``. User errors print one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence

EPILOG = """examples:
  python -m cnnviz models
  python -m cnnviz datasets --json
  python -m cnnviz predict photo.jpg photos/ --model efficientnet_lite0
  python -m cnnviz precompute --dataset stamps --model efficientnet_lite0
  python -m cnnviz precompute --images /data/catalogue --model efficientnet_lite0 --engine ray --ray-address auto
  python -m cnnviz search --dataset stamps --model efficientnet_lite0 --layer embedding \\
      --metric cosine --query birds/adelaide_rosella.jpg
  python -m cnnviz evaluate --dataset stamps --model efficientnet_lite0 --layer all --metric all
  python -m cnnviz benchmark --models efficientnet_lite0,vgg16 --dataset stamps --json
  python -m cnnviz featureviz --model efficientnet_lite0 --layer block5c_out --channels auto --out viz/
  python -m cnnviz bench-search --n 1000000 --dim 1280 --json
  python -m cnnviz curate --images /data/catalogue --model efficientnet_lite0 --json
  python -m cnnviz attribute photo.jpg --model efficientnet_lite0 --method all --out overlays.png --json
  python -m cnnviz adapt --dataset stamps --model efficientnet_lite0 --method lda --json
  python -m cnnviz search --dataset stamps --model efficientnet_lite0+stamps --query photo.jpg --crop 10,20,200,150
"""


def _progress(label: str) -> Callable[[int, int], None]:
    """A tqdm bar on stderr, so --json output on stdout stays clean."""
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=label, unit="img", file=sys.stderr, leave=False, disable=None)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def _table(rows: list[dict], columns: Sequence[str]) -> str:
    def fmt(v) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, (list, tuple)):
            return ",".join(map(str, v))
        return str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _add_source(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--dataset", help="a sample dataset name (see `datasets`)")
    g.add_argument("--images", help="a folder of images (one sub-folder per class) or a .zip of one")


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _emit(args, data, render: Callable[[object], str]) -> None:
    print(json.dumps(data, indent=2) if args.json else render(data))


# --- commands -----------------------------------------------------------------

def cmd_models(args) -> None:
    from .workflows import describe_models

    rows = describe_models()
    if args.names_only:
        print("\n".join(r["name"] for r in rows))
        return
    keep = ("name", "input_size", "layers", "embedding_layer", "weights", "published_top1", "params")
    data = [{k: r[k] for k in keep} for r in rows]
    _emit(args, data, lambda d: _table(d, ("name", "input_size", "weights", "published_top1", "params", "embedding_layer"))
          + "\n(published_top1: ImageNet top-1 %, params: millions — both published figures, see `models --json` sources)")


def cmd_datasets(args) -> None:
    if args.action == "export":
        return _export_dataset(args)
    from .workflows import describe_datasets

    rows = describe_datasets()
    if args.names_only:
        print("\n".join(r["name"] for r in rows))
        return
    data = [{k: r[k] for k in ("name", "n_images", "n_classes", "source")} for r in rows]
    _emit(args, data, lambda d: _table(d, ("name", "n_images", "n_classes", "source")))


def _export_dataset(args) -> None:
    from .errors import CnnvizError
    from .workflows import export_dataset

    if not args.name or not args.out:
        raise CnnvizError("usage: datasets export NAME --out DIR [--split test|train|all]")
    data = export_dataset(args.name, args.out, args.split, _progress("export"))
    _emit(args, data, lambda d: f"{d['dataset']} ({d['split']}): {d['n_images']} images in {d['n_classes']} classes written to {d['out']}")


def cmd_predict(args) -> None:
    from .workflows import predict

    data = predict(args.inputs, args.model, args.batch_size, _progress("predict"))

    def render(d):
        rows = [{"path": p["path"], "rank": i + 1, **t} for p in d["predictions"] for i, t in enumerate(p["top5"])]
        return _table(rows, ("path", "rank", "class_id", "label", "probability"))

    _emit(args, data, render)


def cmd_precompute(args) -> None:
    from .errors import CnnvizError
    from .workflows import precompute

    if args.chunk_size < 1:
        raise CnnvizError("--chunk-size must be at least 1")
    data = precompute(args.model, args.dataset, args.images, args.layers, args.pooling, _progress("features"),
                      args.engine, args.ray_address, args.chunk_size)
    _emit(args, data, lambda d: f"{d['dataset']} × {d['model']}: {d['n_images']} images cached\n" + _table(d["layers"], ("layer", "dim")))


def cmd_search(args) -> None:
    from .workflows import search

    res = search(args.model, args.layer, args.query, args.dataset, args.images, args.metric, args.p, args.top_k,
                 args.pooling, _progress("features"), crop=args.crop).to_dict()

    def render(d):
        q = d["query"]
        score = "n/a (unlabelled query or dataset)" if d["score"] is None else f"{d['score']:.1f} / 100"
        region = "" if q.get("crop") is None else " region x={x} y={y} w={w} h={h}".format(**q["crop"])
        head = (f"query {q['id']}{region} (class {q['label'] or '-'}), metric {d['metric']}, "
                f"search score {score} (top {d['score_k']})")
        return head + "\n" + _table(d["results"], ("rank", "id", "label", "similarity", "distance"))

    _emit(args, res, render)


def cmd_evaluate(args) -> None:
    from .workflows import evaluate

    data = evaluate(args.model, args.dataset, args.images, args.layer, args.metric, args.p, args.pooling,
                    _progress("features"))
    if not args.per_class:
        for r in data["rows"]:
            r.pop("per_class")
    def render(d):
        rows = [{**r, "ci95_mean_score": "exact" if r["ci95"] is None else "{:.2f}–{:.2f}".format(*r["ci95"]["mean_score"]),
                 "ci95_knn": "exact" if r["ci95"] is None else "{:.3f}–{:.3f}".format(*r["ci95"]["knn_accuracy"])}
                for r in d["rows"]]
        return (f"{d['dataset']} × {d['model']} (score k={d['score_k']}, kNN k={d['knn_k']}; above 20,000 images a "
                "seeded sample of queries with 95% intervals)\n" + _table(rows, (
                    "layer", "metric", "mean_score", "ci95_mean_score", "precision_at_k", "knn_accuracy", "ci95_knn",
                    "n_queries", "n_images")))

    _emit(args, data, render)


def cmd_benchmark(args) -> None:
    from .benchmark import accuracy_note
    from .errors import CnnvizError
    from .workflows import benchmark

    try:
        batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        raise CnnvizError(f"--batch-sizes must be comma-separated integers, got {args.batch_sizes!r}") from None
    data = benchmark(args.models, args.dataset, args.images, batch_sizes, args.runs, args.throughput_runs,
                     use_cache=not args.no_cache, progress=_progress("models"))

    def render(d):
        head = f"{d['device']} · {d['date']} · dataset {d['dataset'] or '-'} · " + ", ".join(f"{k} {v}" for k, v in d["versions"].items())
        rows = [{**r, "gflops": r["flops"] / 1e9, "params_m": r["params"] / 1e6} for r in d["rows"]]
        cols = ("model", "weights", "params_m", "size_mb", "gflops", "input_size", "latency_ms_b1_p50", "latency_ms_b1_p95",
                "throughput_b32_img_s", "knn_accuracy", "mean_score", "linear_probe_accuracy", "published_top1")
        note = accuracy_note(d["rows"])
        return head + "\n" + _table(rows, cols) + "\n(latency/throughput/size/FLOPs/accuracy measured here; published_top1: " \
            "ImageNet top-1 % from each model's published source, see --json)" + (f"\n{note}" if note else "")

    _emit(args, data, render)


def cmd_featureviz(args) -> None:
    from .workflows import featureviz

    data = featureviz(args.model, args.layer, args.channels, args.out, args.steps, progress=_progress("channels"))
    _emit(args, data, lambda d: f"{d['model']} · {d['layer']} ({d['steps']} steps)\n"
          + _table(d["channels"], ("channel", "final_activation", "gray_activation", "seconds", "image_path")))


def cmd_attribute(args) -> None:
    from .workflows import attribute

    params = {"layer": args.layer, "samples": args.samples, "max_evals": args.max_evals}
    data = attribute(args.image, args.model, args.method, args.target, params, args.auc_steps, args.deletion_baseline,
                     args.out, progress=_progress("attribution"))
    if args.json:  # one method: its record; several: a list of records
        records = [dict(r, image=data["image"]) for r in data["results"]]
        print(json.dumps(records[0] if len(records) == 1 else records, indent=2))
        return
    print(f"{data['model']} on {data['image']}: top-1 {data['top5'][0]['label']} ({data['top5'][0]['probability']:.3f})")
    rows = [{**r, "target": f"{r['target']['class_id']} {r['target']['label']}", "p": r["target"]["probability"]}
            for r in data["results"]]
    print(_table(rows, ("method", "target", "p", "seconds", "evidence", "deletion_auc", "insertion_auc")))
    print("lower deletion AUC and higher insertion AUC = more faithful" + (f"; overlays written to {data['out']}" if data["out"] else ""))


def _stage_progress():
    """One tqdm bar per curation stage, on stderr."""
    bars: dict = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = _progress(stage)
        bars[stage](done, total)

    return update


def cmd_curate(args) -> None:
    from .workflows import curate

    data = curate(args.model, args.dataset, args.images, args.layer, args.pooling, _stage_progress(), args.refresh,
                  [m for m in (args.probe_models or "").split(",") if m.strip()])

    def render(d):
        from .curate import probe_summary

        lines = [f"{d['dataset']} × {d['model']} · {d['layer']}: {d['n_images']} images"] + [f"note: {n}" for n in d["notes"]]
        lines += [probe_summary(d)] if probe_summary(d) else []
        if d["what_if"]:
            w = d["what_if"]
            lines.append(f"mean search score (k={w['k']}, {w['metric']}): {w['original']:.1f} → {w['without_flagged']:.1f} "
                         f"without the {w['excluded']['total']} flagged images")
        for title, rows, cols in (("suspected label errors", d["label_issues"], ("id", "given", "suggested", "confidence")),
                                  ("near-duplicates", d["near_duplicates"], ("a", "b", "kind", "distance")),
                                  ("leaks between splits", d["leaks"], ("a", "b", "a_split", "b_split", "kind")),
                                  ("outliers (lower score = more unusual)", d["outliers"], ("id", "score")),
                                  ("per class", d["class_summary"], ("class", "n", "label_issue_rate", "mean_score"))):
            if rows or title != "leaks between splits":
                shown = rows[: args.limit]
                more = f" (first {len(shown)} of {len(rows)}; --json for all)" if len(rows) > len(shown) else ""
                lines += ["", f"{title}: {len(rows)}{more}"] + ([_table(shown, cols)] if shown else [])
        return "\n".join(lines)

    _emit(args, data, render)


def cmd_bench_search(args) -> None:
    from .workflows import bench_search

    data = bench_search(args.n, args.dim, nlist=args.nlist, workdir=args.workdir, clusters=args.clusters, spread=args.spread,
                        kind=args.index)
    _emit(args, data, lambda d: _table([d], ("n", "dim", "kind", "exact_ms", "ann_ms", "ann_ms_p95", "recall_at_15",
                                             "build_s", "index_mb", "peak_rss_mb"))
          + f"\nindex: {d['index']}; ms are medians of one-query calls (a dataset image, excluded from its results: "
          f"{d['timed_exact_queries']} exact, {d['timed_queries']} ANN); recall on {d['queries']} held-out queries; "
          f"{d['machine']}; {d['data']}")


def cmd_adapt(args) -> None:
    from .workflows import adapt

    data = adapt(args.model, args.dataset, args.images, args.layer, args.method, args.epochs, args.holdout, args.seed,
                 args.name, _progress("features"), pooling=args.pooling)
    if args.json:
        data = {k: v for k, v in data.items() if k != "history"}

    def render(d):
        s = d["split"]
        rows = [{"held-out": when, **d[when]} for when in ("before", "after")]
        unseen = f", {s['test_unseen_labels']} of them with a label absent from training" if s["test_unseen_labels"] else ""
        return (f"{d['name']}: {d['method']} on {d['model']} · {d['layer']}, {d['epochs']} epochs, {d['seconds']:.1f} s training\n"
                f"split (seed {s['seed']}): {s['train']} training images, {s['test']} held-out images{unseen}\n"
                + _table(rows, ("held-out", "mean_score", "precision_at_k", "knn_accuracy"))
                + f"\n(held-out images searched among held-out images only, cosine, k = {d['eval']['k']}; "
                f"use it as --model {d['name']})")

    _emit(args, data, render)


def cmd_cache(args) -> None:
    from .workflows import cache_info, clear_cache

    if args.action == "clear":
        removed = clear_cache(args.kind)  # --kind is checked against the known kinds before any delete
        _emit(args, {"removed": removed}, lambda d: "removed:\n" + _table(d["removed"], ("path", "files", "bytes"))
              if d["removed"] else "nothing to remove")
        return
    info = cache_info()
    rows = [{"kind": k, **v} for k, v in info["kinds"].items()]
    quota = "no quota (set CNNVIZ_CACHE_MAX_GB)" if info["max_bytes"] is None else \
        f"{info['used_fraction']:.0%} of the {info['max_bytes'] / 1e9:g} GB quota (CNNVIZ_CACHE_MAX_GB)"
    _emit(args, info, lambda d: f"cache at {d['root']}: {d['total_bytes'] / 1e9:.3f} GB used, {quota}\n"
          + _table(rows, ("kind", "files", "bytes", "evictable")))


def build_parser() -> argparse.ArgumentParser:
    from .features import POOLINGS
    from .scoring import DEFAULT_K
    from .search import METRICS

    parser = argparse.ArgumentParser(prog="python -m cnnviz", description="Look inside image CNNs and compare them.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log details (and tracebacks) to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list the model registry")
    p.add_argument("--names-only", action="store_true")
    _add_json(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("datasets", help="list the sample datasets, or export a packaged one as an image folder")
    p.add_argument("action", nargs="?", choices=("list", "export"), default="list")
    p.add_argument("name", nargs="?", help="export: fashion-mnist (from Debian's dataset-fashion-mnist)")
    p.add_argument("--split", choices=("test", "train", "all"), default="test", help="export: which split (default test)")
    p.add_argument("--out", help="export: a new folder to write <class>/<split>_<index>.png into")
    p.add_argument("--names-only", action="store_true")
    _add_json(p)
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("predict", help="top-5 ImageNet classes of images or folders")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--model", required=True)
    p.add_argument("--batch-size", type=int, default=32)
    _add_json(p)
    p.set_defaults(func=cmd_predict)

    def feature_opts(p):
        p.add_argument("--model", required=True)
        p.add_argument("--pooling", choices=POOLINGS, default="avg", help="how spatial maps become vectors (default avg)")
        return p

    p = feature_opts(sub.add_parser("precompute", help="extract and cache features of a dataset"))
    _add_source(p)
    p.add_argument("--layers", default="all", help="all | comma-separated layer names or indices (default all)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: Ray Data workers (a local Ray instance, or --ray-address)")
    p.add_argument("--ray-address", help="an existing Ray cluster, e.g. ray://head:10001 or 'auto' on a cluster node")
    p.add_argument("--chunk-size", type=int, default=1024,
                   help="images per saved chunk; an interrupted run resumes after the last saved chunk (default 1024)")
    _add_json(p)
    p.set_defaults(func=cmd_precompute)

    p = feature_opts(sub.add_parser("search", help="most similar images to a query"))
    _add_source(p)
    p.add_argument("--layer", default="embedding", help="layer name, index or 'embedding' (default)")
    p.add_argument("--metric", choices=METRICS, default="cosine")
    p.add_argument("--p", type=float, default=None, help="minkowski exponent (default 3; p=2 ranks like euclidean)")
    p.add_argument("--query", required=True, metavar="ID_OR_PATH", help="dataset image id (e.g. birds/x.jpg), index, or image file")
    p.add_argument("--top-k", type=int, default=DEFAULT_K,
                   help=f"results to show (default {DEFAULT_K}); the search score always uses the top {DEFAULT_K}")
    p.add_argument("--crop", metavar="X,Y,W,H", help="search with this region of the query (pixels of the original "
                   "image; at least 32 px a side, see docs/adapt.md)")
    _add_json(p)
    p.set_defaults(func=cmd_search)

    p = feature_opts(sub.add_parser("evaluate", help="search score, precision@k and kNN accuracy per layer and metric"))
    _add_source(p)
    p.add_argument("--layer", default="embedding", help="'all', 'embedding' (default) or comma-separated layers")
    p.add_argument("--metric", default="cosine", help=f"'all' or one of: {', '.join(METRICS)}")
    p.add_argument("--p", type=float, default=None, help="minkowski exponent (default 3)")
    p.add_argument("--per-class", action="store_true", help="include per-class mean scores in --json")
    _add_json(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("benchmark", help="accuracy vs latency: timing, size, FLOPs and retrieval accuracy per model")
    p.add_argument("--models", default="all", help="'all' (default) or comma-separated model names")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--dataset", help="labelled sample dataset for accuracy (omit for speed only)")
    g.add_argument("--images", help="labelled folder or .zip for accuracy")
    p.add_argument("--batch-sizes", default="1,32", help="batch 1 latency and the throughput batch (default 1,32)")
    p.add_argument("--runs", type=int, default=20, help="timed batch-1 calls after warm-up (default 20)")
    p.add_argument("--throughput-runs", type=int, default=3, help="timed large-batch calls; the median is used (default 3)")
    p.add_argument("--no-cache", action="store_true", help="measure again even if a cached result exists")
    _add_json(p)
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("featureviz", help="activation-maximisation images of a layer's channels")
    p.add_argument("--model", required=True)
    p.add_argument("--layer", required=True, help="layer name or index")
    p.add_argument("--channels", default="auto", help="'auto' (30 evenly spaced) or comma-separated indices")
    p.add_argument("--out", help="folder to write <model>_<layer>_chNNNN.png into (default: paths in the cache)")
    p.add_argument("--steps", type=int, default=64, help="optimisation steps (default 64)")
    _add_json(p)
    p.set_defaults(func=cmd_featureviz)

    from .attribution import METHODS, RISE_STEPS

    p = sub.add_parser("attribute", help="attribution heatmaps (saliency … SHAP) with deletion/insertion AUC")
    p.add_argument("image", help="an image file")
    p.add_argument("--model", required=True)
    p.add_argument("--method", default="gradcam", help=f"all, or one or more (comma-separated) of: {', '.join(METHODS)}")
    p.add_argument("--target", type=int, help="ImageNet class id to explain (default: the top-1 prediction)")
    p.add_argument("--out", help="write the overlays as one PNG here")
    p.add_argument("--layer", help="Grad-CAM/Grad-CAM++/Score-CAM layer (default: the last conv layer)")
    p.add_argument("--samples", type=int, help="SmoothGrad noisy samples (default 20) / LIME perturbed images (default 1000)")
    p.add_argument("--max-evals", type=int, help="SHAP model evaluations (default 500)")
    p.add_argument("--auc-steps", type=int, default=RISE_STEPS,
                   help=f"deletion/insertion curve steps (default {RISE_STEPS}: the RISE protocol, 224 px per step at 224 px)")
    p.add_argument("--deletion-baseline", choices=("zeros", "blur"), default="zeros")
    _add_json(p)
    p.set_defaults(func=cmd_attribute)

    from .ann import INDEX_KINDS

    p = feature_opts(sub.add_parser("curate", help="suspected label errors, near-duplicates, outliers, leaks between splits (cleanlab)"))
    _add_source(p)
    p.add_argument("--layer", default="embedding", help="layer name, index or 'embedding' (default)")
    p.add_argument("--limit", type=int, default=20, help="rows per table in the text output (default 20; --json has all)")
    p.add_argument("--refresh", action="store_true", help="recompute even if a cached result exists")
    p.add_argument("--probe-models", metavar="M1,M2",
                   help="other models whose label-issue probes are averaged with --model's (better ranking, one "
                        "feature pass each when not cached; e.g. mobilenet_v2_tv,efficientnet_lite2)")
    _add_json(p)
    p.set_defaults(func=cmd_curate)

    p = sub.add_parser("bench-search", help="exact vs FAISS search: latency, recall@15, build time, memory at N × D")
    p.add_argument("--n", type=int, default=100_000, help="indexed vectors (default 100000)")
    p.add_argument("--dim", type=int, default=1280, help="dimensions (default 1280)")
    p.add_argument("--nlist", type=int, help="IVF cells (default: a power of two near sqrt(N))")
    p.add_argument("--workdir", help="folder for the memory-mapped vectors (default: the system temp folder)")
    p.add_argument("--clusters", type=int, default=1000, help="classes in the synthetic data (default 1000)")
    p.add_argument("--spread", type=float, default=1.0, help="class width / centre distance (default 1.0; higher = harder)")
    p.add_argument("--index", choices=INDEX_KINDS, default="auto",
                   help="auto (hnsw for cosine and euclidean, else ivf), ivf, pca-ivf (PCA + IVF) or hnsw (over PCA); candidates are always ranked exactly")
    _add_json(p)
    p.set_defaults(func=cmd_bench_search)

    from .adapt import DEFAULT_EPOCHS, DEFAULT_LAYER, DEFAULT_METHOD, DEFAULT_POOLING, FINETUNE_EPOCHS
    from .adapt import METHODS as ADAPT_METHODS
    from .adapt import POOLINGS as ADAPT_POOLINGS

    p = sub.add_parser("adapt", help="train a search embedding for a labelled dataset (frozen features; held-out score)")
    _add_source(p)
    p.add_argument("--model", required=True, help="base model (its cached features are reused)")
    p.add_argument("--layer", default=DEFAULT_LAYER, help=f"base layer(s) to adapt: all (the 8 layers side by side), "
                   f"embedding, a layer or a comma list (default {DEFAULT_LAYER})")
    p.add_argument("--pooling", choices=ADAPT_POOLINGS, default=DEFAULT_POOLING,
                   help=f"how each layer's feature map is pooled (default {DEFAULT_POOLING})")
    p.add_argument("--method", choices=ADAPT_METHODS, default=DEFAULT_METHOD,
                   help=f"lda (closed form), HEAD-LOSS: linear/mlp with proxy, supcon or triplet loss, or finetune: "
                        f"the model's last block + an MLP, supcon (slow on a CPU; default {DEFAULT_METHOD})")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs (default {DEFAULT_EPOCHS}; finetune: {FINETUNE_EPOCHS} of block + head; lda: none)")
    p.add_argument("--holdout", type=float, default=0.5, help="share of each class held out for measuring (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of training (default 0)")
    p.add_argument("--name", help="name of the adapted model (default MODEL+DATASET, e.g. efficientnet_lite0+stamps)")
    _add_json(p)
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("cache", help="show or clear the artifact cache")
    p.add_argument("action", choices=("info", "clear"))
    from .cache import KNOWN_KINDS

    p.add_argument("--kind", help=f"only this artifact kind, one of: {', '.join(KNOWN_KINDS)}")
    _add_json(p)
    p.set_defaults(func=cmd_cache)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "top_k", 1) is not None and getattr(args, "top_k", 1) < 1:
        parser.error("--top-k must be at least 1")
    from .errors import CnnvizError
    from .models.torch_legacy import UnsafeWeightsError, WeightsFormatError

    try:
        args.func(args)
    except (CnnvizError, UnsafeWeightsError, WeightsFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback for users; -v shows it
        if args.verbose:
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (run with -v for details)", file=sys.stderr)
        return 1
    return 0
