"""Curation benchmark: injected label noise, injected duplicates, and the time for 10k images.

    python benchmarks/curate.py [--sets stamps,emoji3d,fashion] [--seeds 0,1,2] [--models efficientnet_lite0,efficientnet_lite2]
                                [--big DIR] [--json OUT]

A model entry ``A+B+C`` curates with model A and averages the label-issue probes of B and C in
(``curate --model A --probe-models B,C``).

- Label noise: each sample set is copied to a temp folder and 10% of its images (seeded; once per seed in
  ``--seeds``) are moved into another class's folder. Reported: precision and recall of the first N entries of
  ``label_issues`` (N = the number flipped), and of cleanlab's whole flagged list, per seed and their mean; and the
  layers the probe chose.
- Duplicates: the set is copied again with 10 re-encoded + resized copies (JPEG quality 70, 80% size) and
  10 slightly cropped copies (4% off each side) of random images. Reported: the share of copies found as a
  near-duplicate of their original (any kind: exact, perceptual or features).
- Every experiment runs once per model in ``--models``; the summary table gives each set and model the mean
  precision@N over the seeds and the duplicate recall.
- Time for a large folder (default /work/data/fashion-mnist-test, the Fashion-MNIST test set as PNGs) with the first
  model's features already cached: a fresh curation (``refresh``), features read from the cache. Skipped with a
  message when those features are not cached (computing them is `python -m cnnviz precompute`).

Targets (issue #19): label-issue precision ≥ 0.6 at 10% noise; duplicate recall ≥ 0.9 for re-encoded copies.
Every run copies into a temp folder (feature extraction of ~200 images per run), so the whole script takes a few
minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from cnnviz.data.registry import SAMPLES_DIR, get_dataset_spec  # noqa: E402
from cnnviz.workflows import curate  # noqa: E402

NOISE = 0.10
SEED = 0


def copy_set(name: str, dest: Path) -> Path:
    root = dest / name
    shutil.copytree(SAMPLES_DIR / get_dataset_spec(name).folder, root, ignore=shutil.ignore_patterns("*.md", ".*"))
    return root


def flip_labels(root: Path, fraction: float, seed: int) -> set[str]:
    """Move ``fraction`` of the images into another (random) class folder; returns their new ids."""
    rng = np.random.default_rng(seed)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    chosen = rng.choice(len(files), size=int(round(fraction * len(files))), replace=False)
    moved = set()
    for i in sorted(chosen):
        src = files[i]
        to = rng.choice([c for c in classes if c != src.parent.name])
        dst = root / to / f"flipped_{src.parent.name}_{src.name}"
        src.rename(dst)
        moved.add(f"{to}/{dst.name}")
    return moved


def add_copies(root: Path, seed: int, n: int = 10) -> dict[str, list[tuple[str, str]]]:
    """n re-encoded + resized copies and n cropped copies of random images, beside their originals."""
    rng = np.random.default_rng(seed)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    picks = rng.choice(len(files), size=2 * n, replace=False)
    out: dict[str, list[tuple[str, str]]] = {"reencoded": [], "cropped": []}
    for j, i in enumerate(picks):
        src = files[i]
        img = Image.open(src).convert("RGB")
        kind = "reencoded" if j < n else "cropped"
        if kind == "reencoded":
            img = img.resize((max(1, int(img.width * 0.8)), max(1, int(img.height * 0.8))), Image.BICUBIC)
        else:
            dx, dy = int(img.width * 0.04), int(img.height * 0.04)
            img = img.crop((dx, dy, img.width - dx, img.height - dy))
        dst = src.parent / f"copy_{kind}_{src.stem}.jpg"
        img.save(dst, quality=70)
        out[kind].append((src.relative_to(root).as_posix(), dst.relative_to(root).as_posix()))
    return out


def run_curate(entry: str, root: Path, **options) -> dict:
    """``entry`` is a model name, or ``A+B+…``: model A with the probes of B, … averaged in."""
    model, *probe_models = entry.split("+")
    return curate(model, images=str(root), refresh=True, probe_models=probe_models, **options)


def noise_row(name: str, model: str, work: Path, seed: int = SEED) -> dict:
    root = copy_set(name, work / f"noise-{seed}")
    flipped = flip_labels(root, NOISE, seed)
    started = time.perf_counter()
    res = run_curate(model, root)
    seconds = time.perf_counter() - started
    ranked = [r["id"] for r in res["label_issues"]]
    n = len(flipped)
    top = ranked[:n]
    hits = len(set(top) & flipped)
    all_hits = len(set(ranked) & flipped)
    return {"set": name, "seed": seed, "model": model, "images": res["n_images"], "flipped": n, "flagged": len(ranked),
            "probe_layers": res["probe"]["layers"], "probe_cv_accuracy": res["probe"]["cv_accuracy_used"],
            "precision_top_n": hits / max(len(top), 1), "recall_top_n": hits / n,
            "precision_flagged": all_hits / max(len(ranked), 1), "recall_flagged": all_hits / n,
            "seconds_with_features": round(seconds, 1)}


def duplicates_row(name: str, model: str, work: Path) -> dict:
    root = copy_set(name, work / "dups")
    copies = add_copies(root, SEED)
    res = run_curate(model, root)
    found = {frozenset((r["a"], r["b"])): r["kind"] for r in res["near_duplicates"]}
    row = {"set": name, "model": model, "images": res["n_images"]}
    for kind, pairs in copies.items():
        kinds = [found.get(frozenset(p)) for p in pairs]
        row[f"recall_{kind}"] = sum(k is not None for k in kinds) / len(pairs)
        row[f"{kind}_found_by"] = {k: kinds.count(k) for k in ("exact", "perceptual", "features") if kinds.count(k)}
    row["pairs_reported"] = len(res["near_duplicates"])
    return row


def big_row(folder: Path, model: str) -> dict:
    from cnnviz import cache
    from cnnviz.data import open_dataset
    from cnnviz.features import feature_key
    from cnnviz.workflows import get_model

    if not folder.is_dir():
        return {"skipped": f"{folder} does not exist"}
    ds = open_dataset(folder)
    loaded = get_model(model.split("+")[0])
    key = feature_key(ds.digest(), loaded, loaded.spec.embedding_layer, "avg")
    if not cache.has_arrays("features", key) and cache.load_matrix("features", key) is None:
        return {"skipped": f"features of {folder} ({len(ds.items)} images) × {model} are not cached in {cache.cache_root()}; "
                           f"run `python -m cnnviz precompute --images {folder} --model {model}` first"}
    stages: dict[str, float] = {}
    last = [time.perf_counter(), None]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if last[1] is not None:
            stages[last[1]] = stages.get(last[1], 0.0) + now - last[0]
        last[0], last[1] = now, stage

    started = time.perf_counter()
    res = run_curate(model, folder, progress=progress)
    total = time.perf_counter() - started
    if last[1] is not None:
        stages[last[1]] = stages.get(last[1], 0.0) + time.perf_counter() - last[0]
    return {"folder": str(folder), "model": model, "images": res["n_images"], "seconds": round(total, 1),
            "stages_s": {k: round(v, 1) for k, v in stages.items()}, "label_issues": len(res["label_issues"]),
            "near_duplicates": len(res["near_duplicates"]), "outliers": len(res["outliers"]),
            "what_if": res["what_if"], "probe": res["probe"], "notes": res["notes"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="stamps,emoji3d,fashion")
    ap.add_argument("--seeds", default="0,1,2", help="label-noise seeds (duplicates use seed 0)")
    ap.add_argument("--models", default="efficientnet_lite0,efficientnet_lite2,efficientnet_lite0+mobilenet_v2_tv+efficientnet_lite2",
                    help="comma-separated; A+B+C: model A with the probes of B and C averaged in; the large folder is "
                         "timed with the first")
    ap.add_argument("--big", default="/work/data/fashion-mnist-test", help="a large folder with cached features ('' to skip)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    out = {"machine": f"{platform.node()} ({os.cpu_count()} CPUs)", "date": time.strftime("%Y-%m-%d"), "noise": [],
           "duplicates": [], "big": None, "load_avg_start": [round(x, 2) for x in os.getloadavg()]}
    models = args.models.split(",")
    with tempfile.TemporaryDirectory(prefix="cnnviz-curate-bench-") as tmp:
        for model in models:
            for name in args.sets.split(","):
                for seed in (int(x) for x in args.seeds.split(",")):
                    out["noise"].append(noise_row(name, model, Path(tmp) / model, seed))
                    print(json.dumps(out["noise"][-1]), flush=True)
                out["duplicates"].append(duplicates_row(name, model, Path(tmp) / model))
                print(json.dumps(out["duplicates"][-1]), flush=True)
    if args.big:
        out["load_avg_before_big"] = [round(x, 2) for x in os.getloadavg()]
        out["big"] = big_row(Path(args.big), models[0])
        print(json.dumps(out["big"]), flush=True)
    print("\n| set | model | seed | images | flipped (10%) | probe layers | precision@N | recall@N | flagged | "
          "precision (flagged) | recall (flagged) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    means = {}
    for model in models:
        for name in args.sets.split(","):
            rows = [r for r in out["noise"] if r["set"] == name and r["model"] == model]
            for r in rows:
                print(f"| {name} | {model} | {r['seed']} | {r['images']} | {r['flipped']} | {', '.join(r['probe_layers'])} | "
                      f"{r['precision_top_n']:.2f} | {r['recall_top_n']:.2f} | {r['flagged']} | "
                      f"{r['precision_flagged']:.2f} | {r['recall_flagged']:.2f} |")
            mean = {k: float(np.mean([r[k] for r in rows])) for k in
                    ("precision_top_n", "recall_top_n", "flagged", "precision_flagged", "recall_flagged")}
            means[name, model] = mean
            print(f"| {name} | {model} | mean | | | | **{mean['precision_top_n']:.2f}** | {mean['recall_top_n']:.2f} | "
                  f"{mean['flagged']:.1f} | {mean['precision_flagged']:.2f} | {mean['recall_flagged']:.2f} |")
    print("\n| set | model | re-encoded + resized copies found | slightly cropped copies found |")
    print("|---|---|---|---|")
    for r in out["duplicates"]:
        print(f"| {r['set']} | {r['model']} | {r['recall_reencoded']:.2f} {r['reencoded_found_by']} | "
              f"{r['recall_cropped']:.2f} {r['cropped_found_by']} |")
    dups = {(r["set"], r["model"]): r for r in out["duplicates"]}
    print(f"\nSummary (targets: precision@N >= 0.6, re-encoded recall >= 0.9; seeds {args.seeds}):\n")
    print("| set | model | precision@N (mean) | re-encoded copies found | cropped copies found |")
    print("|---|---|---|---|---|")
    for (name, model), mean in means.items():
        d = dups[name, model]
        print(f"| {name} | {model} | {mean['precision_top_n']:.3f} | {d['recall_reencoded']:.2f} | {d['recall_cropped']:.2f} |")
    out["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"\nload average (1, 5, 15 min): start {out['load_avg_start']}, end {out['load_avg_end']} on {os.cpu_count()} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
