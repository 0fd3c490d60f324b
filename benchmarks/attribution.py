"""Attribution benchmark: cost and faithfulness of every method, measured in one run.

    python benchmarks/attribution.py [--dataset stamps] [--n 30] [--auc-model efficientnet_lite0]
        [--timing-models efficientnet_lite1,efficientnet_lite2,mobilenet_v2_tv] [--timing-n 3]
        [--steps 32] [--lime-samples 300] [--shap-evals 300] [--gap-n 10] [--json OUT]

Prints, on this machine:
  * seconds per method per model: median over images of the method alone
    (the first image of each method includes TF tracing, so the median skips it);
  * mean deletion / insertion AUC per method over ``--n`` evenly spaced images of
    the dataset, target = the model's top-1 class, beside a random heatmap
    (the floor any method should beat on insertion);
  * how far AUCs over ``--steps`` steps are from the RISE protocol's 224 steps
    (mean absolute difference over ``--gap-n`` images, Grad-CAM and saliency).
Results are cached, so a rerun reprints them; the seconds are those measured
when each result was first computed. Use a fresh CNNVIZ_CACHE_DIR to re-measure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TQDM_DISABLE", "1")  # lime's own progress bar

import numpy as np


def evenly_spaced(n_items: int, n: int) -> list[int]:
    return sorted({int(round(i)) for i in np.linspace(0, n_items - 1, min(n, n_items))})


def run(args) -> dict:
    from cnnviz.attribution import METHODS, FaithfulnessConfig, explain, faithfulness
    from cnnviz.data import open_dataset
    from cnnviz.features import load_dataset_images
    from cnnviz.workflows import get_model

    ds = open_dataset(args.dataset)
    params = {"samples": None, "max_evals": args.shap_evals}
    method_params = {m: dict(params, samples=args.lime_samples if m == "lime" else None) for m in METHODS}
    faith = FaithfulnessConfig(steps=args.steps)
    seconds: dict[str, dict[str, float]] = {}
    aucs: dict[str, list[tuple[float, float]]] = {m: [] for m in METHODS}
    random_aucs: list[tuple[float, float]] = []
    gaps: dict[str, list[tuple[float, float]]] = {"gradcam": [], "saliency": []}
    models = [args.auc_model] + [m for m in args.timing_models.split(",") if m]
    for model_name in models:
        loaded = get_model(model_name)
        n = args.n if model_name == args.auc_model else args.timing_n
        indices = evenly_spaced(len(ds.items), n)
        images = load_dataset_images(ds, indices, loaded.spec.input_size)
        per_method: dict[str, list[float]] = {m: [] for m in METHODS}
        for i, img in enumerate(images):
            t = time.perf_counter()
            for method in METHODS:
                a = explain(loaded, img, method, params=method_params[method], faith=faith)
                per_method[method].append(a.seconds)
                if model_name == args.auc_model and a.scored:  # maps with no positive evidence have no AUC
                    aucs[method].append((a.faithfulness.deletion_auc, a.faithfulness.insertion_auc))
                    if method in gaps and i < args.gap_n:
                        full = explain(loaded, img, method, params=method_params[method], faith=FaithfulnessConfig())
                        if full.scored:
                            gaps[method].append((abs(full.faithfulness.deletion_auc - a.faithfulness.deletion_auc),
                                                 abs(full.faithfulness.insertion_auc - a.faithfulness.insertion_auc)))
            if model_name == args.auc_model:
                rand = np.random.default_rng(i).random(img.shape[:2])
                f = faithfulness(loaded, img, rand, a.target.class_id, faith)
                random_aucs.append((f.deletion_auc, f.insertion_auc))
            print(f"{model_name} image {i + 1}/{len(images)} done in {time.perf_counter() - t:.1f} s", flush=True)
        seconds[model_name] = {m: statistics.median(v[1:] if len(v) > 1 else v) for m, v in per_method.items()}
    mean = lambda pairs, k: float(np.mean([p[k] for p in pairs])) if pairs else None
    return {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
        "dataset": ds.name, "n_images": args.n, "auc_model": args.auc_model, "steps": args.steps,
        "lime_samples": args.lime_samples, "shap_evals": args.shap_evals, "seconds": seconds,
        "auc": {m: {"deletion": mean(v, 0), "insertion": mean(v, 1)} for m, v in aucs.items()}
               | {"random heatmap": {"deletion": mean(random_aucs, 0), "insertion": mean(random_aucs, 1)}},
        "gap_vs_224_steps": {m: {"deletion": mean(v, 0), "insertion": mean(v, 1), "n": len(v)} for m, v in gaps.items()},
    }


def print_table(r: dict) -> None:
    models = list(r["seconds"])
    print(f"\nMeasured on {r['machine']}; AUCs: {r['auc_model']} on {r['n_images']} images of {r['dataset']}, "
          f"{r['steps']} steps; LIME {r['lime_samples']} samples, SHAP {r['shap_evals']} evals\n")
    print("| method | " + " | ".join(f"{m} s" for m in models) + " | deletion AUC ↓ | insertion AUC ↑ |")
    print("|---" * (len(models) + 3) + "|")
    for method, a in r["auc"].items():
        secs = " | ".join(f"{r['seconds'][m][method]:.2f}" if method in r["seconds"][m] else "–" for m in models)
        print(f"| {method} | {secs} | {a['deletion']:.3f} | {a['insertion']:.3f} |")
    for m, g in r["gap_vs_224_steps"].items():
        if g["n"]:
            print(f"{m}: |AUC({r['steps']} steps) − AUC(224 steps)| mean over {g['n']} images: "
                  f"deletion {g['deletion']:.4f}, insertion {g['insertion']:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="stamps")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--auc-model", default="efficientnet_lite0")
    ap.add_argument("--timing-models", default="efficientnet_lite1,efficientnet_lite2,mobilenet_v2_tv")
    ap.add_argument("--timing-n", type=int, default=3)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--lime-samples", type=int, default=300)
    ap.add_argument("--shap-evals", type=int, default=300)
    ap.add_argument("--gap-n", type=int, default=10)
    ap.add_argument("--json", help="also write the results as JSON here")
    args = ap.parse_args()
    result = run(args)
    print_table(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
