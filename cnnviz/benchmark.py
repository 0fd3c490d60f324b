"""Accuracy versus latency of the registry's models, measured on this machine.

Timing uses one compiled forward pass per (model, batch size) (``timing``:
a ``tf.function`` on TensorFlow, ``jax.jit`` on Keras' JAX backend), called on
a fixed random batch after warm-up: batch-1 latency (p50, p95 over ``runs``
calls) and batch-32 throughput. FLOPs are an exact per-layer count of the
multiply-accumulates of convolution and dense layers (× 2), the convention of
published FLOP tables; normalisation, activations and pooling are not counted.
Accuracy is measured on a labelled dataset from each model's embedding
(cosine): mean search score, leave-one-out 5-NN accuracy and a 5-fold
cross-validated logistic-regression probe. Published ImageNet top-1 is shown
beside it with its source. Models without trained weights get timing and size
only (random weights time the same).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import logging
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from . import cache
from .errors import CnnvizError
from .models.registry import MODELS, get_model_spec
from .progress import Progress
from .timing import CompiledForward, device_description, keras_backend, peak_memory_mb, reset_peak_memory

log = logging.getLogger(__name__)

BENCHMARK_VERSION = 1


@dataclass
class BenchmarkRow:
    model: str
    family: str
    weights: str  # "imagenet" | "random"
    params: int
    size_mb: float  # the model's weights saved as .weights.h5
    flops: int  # per image, 2 × MACs of conv and dense layers
    input_size: int
    latency_ms_b1_p50: float
    latency_ms_b1_p95: float
    throughput_b32_img_s: float | None
    peak_memory_mb: float | None  # GPU only (TF allocator peak, or XLA's memory plan on JAX); None on CPU
    knn_accuracy: float | None
    mean_score: float | None
    linear_probe_accuracy: float | None
    published_top1: float | None
    published_source: str
    # images used as queries for knn_accuracy / mean_score: all up to 20,000, else a seeded sample with 95% intervals
    accuracy_queries: int | None = None
    knn_accuracy_ci95: list | None = None
    mean_score_ci95: list | None = None


COLUMNS = tuple(f.name for f in fields(BenchmarkRow))  # table order (stored JSON has sorted keys)
TIMING_COLUMNS = ("model", "input_size", "latency_ms_b1_p50", "latency_ms_b1_p95", "throughput_b32_img_s", "peak_memory_mb")
# Results measured on other machines (a GPU server), shipped so that users can compare before buying or renting one.
REFERENCE_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def library_versions() -> dict[str, str]:
    """Python, the Keras backend and the versions of the libraries that ran the numbers."""
    out = {"python": platform.python_version(), "keras backend": keras_backend()}
    for pkg in ("tensorflow-cpu", "tensorflow", "jax", "jaxlib", "keras", "numpy"):
        if pkg.startswith("jax") and out["keras backend"] != "jax":
            continue
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def count_flops(model) -> int:
    """Per-image FLOPs = 2 × multiply-accumulates of Conv2D, DepthwiseConv2D, SeparableConv2D and Dense."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += count_flops(layer)
            continue
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D, keras.layers.Dense)):
            continue
        out_shape, in_shape = layer.output.shape, layer.input.shape
        if isinstance(layer, keras.layers.SeparableConv2D):
            kh, kw = layer.kernel_size
            oh, ow, out_c = out_shape[1], out_shape[2], out_shape[3]
            in_c, dm = in_shape[-1], layer.depth_multiplier
            total += 2 * oh * ow * (kh * kw * in_c * dm + in_c * dm * out_c)
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            oh, ow, out_c = out_shape[1], out_shape[2], out_shape[3]
            total += 2 * oh * ow * kh * kw * out_c
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            oh, ow, out_c = out_shape[1], out_shape[2], out_shape[3]
            in_c = in_shape[-1] // layer.groups
            total += 2 * oh * ow * kh * kw * in_c * out_c
        elif isinstance(layer, keras.layers.Dense):
            positions = int(np.prod(in_shape[1:-1])) if len(in_shape) > 2 else 1
            total += 2 * positions * in_shape[-1] * layer.units
    return int(total)


def weights_file_mb(model) -> float:
    """Size of the model's weights written as a Keras .weights.h5 file."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.weights.h5"
        model.save_weights(str(path))
        return path.stat().st_size / 1e6


def time_batches(forward: CompiledForward, runs: int, warmup: int = 3) -> list[float]:
    """Seconds per call of a compiled forward pass, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        forward()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        forward()
        times.append(time.perf_counter() - t)
    return times


def random_batch(model, batch_size: int) -> np.ndarray:
    size = model.inputs[0].shape[1]
    return np.random.default_rng(0).uniform(0, 255, (batch_size, size, size, 3)).astype(np.float32)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def linear_probe_accuracy(features: np.ndarray, labels: Sequence, folds: int = 5, seed: int = 0) -> float | None:
    """Stratified k-fold accuracy of a logistic-regression probe (None when a class is too small)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    counts = np.unique(np.asarray(labels, dtype=object).astype(str), return_counts=True)[1]
    folds = min(folds, int(counts.min()))
    if folds < 2:
        return None
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(cross_val_score(probe, features, np.asarray(labels, dtype=object).astype(str), cv=cv).mean())


def _has(value) -> bool:
    """A measured number: not None and not NaN (pandas turns None into NaN)."""
    return value is not None and value == value


def pareto_front(rows: Sequence[dict], x: str, y: str, lower_x_is_better: bool = True) -> list[str]:
    """Models not beaten on both axes (y: higher is better). Rows missing x or y are ignored."""
    pts = [(r["model"], r[x], r[y]) for r in rows if _has(r.get(x)) and _has(r.get(y))]
    better_x = (lambda a, b: a <= b) if lower_x_is_better else (lambda a, b: a >= b)
    strictly = (lambda a, b: a < b) if lower_x_is_better else (lambda a, b: a > b)
    front = []
    for name, px, py in pts:
        dominated = any(better_x(qx, px) and qy >= py and (strictly(qx, px) or qy > py) for _, qx, qy in pts)
        if not dominated:
            front.append(name)
    return front


def benchmark_model(name: str, dataset=None, batch_sizes: Sequence[int] = (1, 32), runs: int = 20,
                    throughput_runs: int = 3) -> BenchmarkRow:
    """Measure one model: timing, size, FLOPs, and accuracy when it has trained weights and a dataset is given."""
    from .models.build import build_model
    from .scoring import evaluate_retrieval

    spec = get_model_spec(name)
    loaded = build_model(name, require_weights=False)
    model = loaded.model
    reset_peak_memory()
    forwards = [CompiledForward(model, random_batch(model, 1))]
    b1 = time_batches(forwards[0], runs)
    tput = None
    big = [b for b in batch_sizes if b > 1]
    if big:
        forwards.append(CompiledForward(model, random_batch(model, big[0])))
        tput = big[0] / statistics.median(time_batches(forwards[-1], throughput_runs, warmup=1))
    peak = peak_memory_mb(forwards)
    knn = score = probe = queries = ci = None
    if dataset is not None and loaded.trained and dataset.labelled:
        from .features import extract_features

        feats = extract_features(loaded, dataset, [spec.embedding_layer])[spec.embedding_layer]
        rep = evaluate_retrieval(feats, dataset.labels, "cosine")
        knn, score, queries, ci = rep.knn_accuracy, rep.mean_score, rep.n_queries, rep.ci95 or {}
        probe = linear_probe_accuracy(feats, dataset.labels)
    return BenchmarkRow(
        model=name, family=spec.family, weights=loaded.weights, params=int(model.count_params()),
        size_mb=round(weights_file_mb(model), 2), flops=count_flops(model), input_size=spec.input_size,
        latency_ms_b1_p50=1000 * percentile(b1, 50), latency_ms_b1_p95=1000 * percentile(b1, 95),
        throughput_b32_img_s=tput, peak_memory_mb=peak, knn_accuracy=knn, mean_score=score,
        linear_probe_accuracy=probe, published_top1=spec.published_top1, published_source=spec.published_source,
        accuracy_queries=queries, knn_accuracy_ci95=(ci or {}).get("knn_accuracy"),
        mean_score_ci95=(ci or {}).get("mean_score"),
    )


def resolve_models(models: str | Sequence[str]) -> list[str]:
    if models == "all":
        return list(MODELS)
    names = [m.strip() for m in models.split(",")] if isinstance(models, str) else list(models)
    for n in names:
        get_model_spec(n)
    return names


def run_benchmark(models: str | Sequence[str] = "all", dataset=None, batch_sizes: Sequence[int] = (1, 32),
                  runs: int = 20, throughput_runs: int = 3, progress: Progress | None = None,
                  use_cache: bool = True) -> dict:
    """Benchmark several models; results are cached per (models, dataset, settings, device, versions)."""
    names = resolve_models(models)
    if not batch_sizes or min(batch_sizes) < 1:
        raise CnnvizError("batch sizes must be positive integers")
    if runs < 1 or throughput_runs < 1:
        raise CnnvizError("--runs and --throughput-runs must be at least 1")
    target = _result_path(names, dataset, batch_sizes, runs, throughput_runs)
    if use_cache and (hit := cached_result(target)) is not None:
        return hit
    device, versions = device_description(), library_versions()
    rows = []
    for i, name in enumerate(names):
        if progress:  # the i-th model of ``names`` is starting
            progress(i, len(names))
        rows.append(asdict(benchmark_model(name, dataset, batch_sizes, runs, throughput_runs)))
    if progress:
        progress(len(names), len(names))
    result = {"device": device, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "versions": versions, "dataset": dataset.name if dataset else None,
              "settings": {"batch_sizes": list(batch_sizes), "runs_b1": runs, "runs_throughput": throughput_runs,
                           "flops": "exact per-layer count: 2 × MACs of conv and dense layers"},
              "rows": rows}
    cache.write_json_atomic(target, result)
    return result


def _result_path(names: Sequence[str], dataset, batch_sizes: Sequence[int], runs: int, throughput_runs: int) -> Path:
    key = cache.make_key("benchmark", models=list(names), dataset=dataset.digest() if dataset else None,
                         batch_sizes=list(batch_sizes), runs=runs, throughput_runs=throughput_runs,
                         device=device_description(), backend=keras_backend(), version=BENCHMARK_VERSION)
    return cache.entry_dir("benchmarks") / f"{key}.json"


def cached_result(path: Path) -> dict | None:
    """A stored benchmark result, or None (a corrupt file is removed)."""
    import json

    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        cache.safe_remove(path)
        return None


def find_cached_benchmark(models: str | Sequence[str] = "all", dataset=None, batch_sizes: Sequence[int] = (1, 32),
                          runs: int = 20, throughput_runs: int = 3) -> dict | None:
    """The cached result for these settings on this device, without measuring anything."""
    return cached_result(_result_path(resolve_models(models), dataset, batch_sizes, runs, throughput_runs))


def reference_results(directory: Path = REFERENCE_DIR) -> list[dict]:
    """Benchmark results measured elsewhere and shipped in ``benchmarks/results/*.json``, newest first.

    Unreadable files are skipped with a warning rather than breaking the page."""
    import json

    found = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            result = json.loads(path.read_text())
            if not {"device", "date", "versions", "settings", "rows"} <= set(result):
                raise ValueError("missing keys")
        except ValueError as exc:
            log.warning("skipping reference benchmark %s: %s", path.name, exc)
            continue
        found.append(result)
    return sorted(found, key=lambda r: r["date"], reverse=True)


def _interval(value) -> list[float] | None:
    """A stored [low, high] interval, or None (missing, or NaN where a table row lacks it)."""
    return list(value) if isinstance(value, (list, tuple)) and len(value) == 2 else None


def _half_width(value) -> float:
    ci = _interval(value)
    return (ci[1] - ci[0]) / 2 if ci else 0.0


def accuracy_note(rows: Sequence[dict]) -> str | None:
    """Which images the measured accuracy figures used as queries, and their 95% intervals when sampled."""
    sampled = [r for r in rows if _interval(r.get("mean_score_ci95"))]
    if not sampled:
        measured = [int(q) for r in rows if isinstance(q := r.get("accuracy_queries"), (int, float)) and q == q and q > 0]
        return f"5-NN accuracy and mean search score: every one of the {max(measured):,} images as the query." if measured else None
    widest = max(sampled, key=lambda r: _half_width(r.get("mean_score_ci95")))
    knn_half = max(_half_width(r.get("knn_accuracy_ci95")) for r in sampled)
    return (f"5-NN accuracy and mean search score: a seeded sample of {int(widest['accuracy_queries']):,} images as "
            f"queries (95% intervals: mean score ± {_half_width(widest['mean_score_ci95']):.1f} or better, 5-NN accuracy "
            f"± {knn_half:.3f} or better; columns mean_score_ci95 and knn_accuracy_ci95).")


def advice(rows: Sequence[dict], accuracy: str = "knn_accuracy", latency: str = "latency_ms_b1_p50") -> list[str]:
    """Short data-driven guidance: the fastest model within 1 point of the best, and the best overall."""
    scored = [r for r in rows if _has(r.get(accuracy))]
    if not scored:
        return ["No model here has trained weights and a labelled dataset, so only speed can be compared."]
    scale = 100.0 if accuracy != "mean_score" else 1.0
    best = max(scored, key=lambda r: r[accuracy])
    near = [r for r in scored if (best[accuracy] - r[accuracy]) * scale <= 1.0]
    fastest_near = min(near, key=lambda r: r[latency])
    fastest = min(rows, key=lambda r: r[latency])
    lines = [f"Most accurate here: **{best['model']}** ({accuracy} {best[accuracy] * scale:.1f}, {best[latency]:.1f} ms)."]
    if fastest_near["model"] != best["model"]:
        lines.append(f"Fastest within 1 point of it: **{fastest_near['model']}** ({fastest_near[accuracy] * scale:.1f}, "
                     f"{fastest_near[latency]:.1f} ms, {best[latency] / fastest_near[latency]:.1f}× faster).")
    lines.append(f"Fastest overall: **{fastest['model']}** ({fastest[latency]:.1f} ms at batch 1).")
    return lines


def latest_cached_benchmark() -> dict | None:
    """The newest benchmark result stored in this machine's cache (any models, any dataset), or None."""
    found = [r for p in cache.entry_dir("benchmarks").glob("*.json")
             if (r := cached_result(p)) is not None and isinstance(r, dict) and {"date", "rows", "device"} <= set(r)]
    return max(found, key=lambda r: r["date"], default=None)
