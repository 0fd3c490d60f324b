"""The operations the CLI and the pages share, each returning plain data.

These compose the registries, feature cache, search and scoring; their
``to_dict`` shapes are the CLI's JSON contract.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .data import ImageDataset, open_dataset
from .data.folder import scan_folder
from .data.images import is_image_name, load_for_model
from .data.registry import DATASETS
from .errors import DatasetError
from .features import CHUNK_IMAGES, extract_features, feature_key, features_of_images, resolve_layers
from .featureviz import EXPLORER_CHANNELS
from .models.build import LoadedModel, build_model
from .models.inference import predict_batches, top_k
from .models.registry import MODELS
from .models.weights import weights_status
from .progress import Progress
from .scoring import DEFAULT_K, DEFAULT_KNN_K, SCORE_K, evaluate_retrieval, hit_scores
from .search import METRICS, check_metric, similarity


MAX_MODELS = 8  # built models kept per process; each also holds its feature extractors and attributors
_MODEL_LOCK = threading.RLock()  # re-entrant: an adapted model builds its base model inside its own build


@functools.lru_cache(maxsize=MAX_MODELS)
def _built(name: str, require_weights: bool) -> LoadedModel:
    return build_model(name, require_weights=require_weights)


def get_model(name: str, require_weights: bool = True) -> LoadedModel:
    """A built model, shared within the process (read-only): the one model cache of the CLI and the
    dashboard, bounded to ``MAX_MODELS`` (least recently used dropped), built once even when sessions
    ask at the same time."""
    with _MODEL_LOCK:
        return _built(name, require_weights)


get_model.cache_clear = _built.cache_clear  # type: ignore[attr-defined]  # drop every built model (e.g. replaced)


def describe_models() -> list[dict]:
    """The model registry as rows (no model is built)."""
    rows = []
    for spec in MODELS.values():
        rows.append({
            "name": spec.name, "family": spec.family, "input_size": spec.input_size, "layers": list(spec.layers),
            "embedding_layer": spec.embedding_layer, "weights": weights_status(spec), "classifier": spec.has_classifier,
            "published_top1": spec.published_top1, "params": spec.published_params_m,
            "published_source": spec.published_source, "weights_source": spec.weights_source,
        })
    from .adapt import describe_adapted

    for a in describe_adapted():  # saved adapted models (python -m cnnviz adapt): base layers + "adapted"
        spec = MODELS[a["base"]]
        rows.append({
            "name": a["name"], "family": f"{spec.family}, adapted", "input_size": spec.input_size,
            "layers": list(spec.layers), "embedding_layer": "adapted", "weights": weights_status(spec),
            "classifier": False, "published_top1": None, "params": None, "published_source": "",
            "weights_source": f"{a['base']} + {a['method']} projection of {a['layer']} trained on {a['dataset']}",
            "adapted": a,
        })
    return rows


def describe_datasets() -> list[dict]:
    rows = []
    for spec in DATASETS.values():
        ds = open_dataset(spec.name)
        rows.append({"name": spec.name, "n_images": len(ds.items), "n_classes": len(ds.classes),
                     "source": spec.source, "license": spec.license})
    return rows


def collect_image_paths(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders expanded to the images under them (sorted)."""
    paths: list[Path] = []
    for raw in inputs:
        p = Path(raw).expanduser()
        if p.is_dir():
            paths.extend(i.path for i in scan_folder(p).items)
        elif p.is_file():
            paths.append(p)
        else:
            raise DatasetError(f"{p}: no such file or folder")
    return paths


def predict(inputs: Sequence[str | Path], model: str, batch_size: int = 32, progress: Progress | None = None) -> dict:
    """Top-5 ImageNet classes for images and folders of images."""
    loaded = get_model(model)
    paths = collect_image_paths(inputs)
    images = np.stack([load_for_model(p, loaded.spec.input_size) for p in paths])
    probs = predict_batches(loaded, images, batch_size, progress)
    return {"model": model, "predictions": [
        {"path": str(p), "top5": [t.to_dict() for t in top]} for p, top in zip(paths, top_k(probs, 5))
    ]}


def precompute(model: str, dataset: str | None = None, images: str | None = None, layers: str | None = "all",
               pooling: str = "avg", progress: Progress | None = None, engine: str = "local",
               ray_address: str | None = None, chunk_size: int = CHUNK_IMAGES) -> dict:
    """Extract and cache features of every requested layer in one pass (resumable; locally or on Ray)."""
    ds = open_dataset(dataset, images=images)
    loaded = get_model(model)
    feats = extract_features(loaded, ds, layers, pooling, progress=progress, engine=engine, chunk_size=chunk_size,
                             ray_address=ray_address)
    return {"dataset": ds.name, "model": model, "n_images": len(ds.items), "engine": engine,
            "layers": [{"layer": n, "dim": int(f.shape[1])} for n, f in feats.items()]}


@dataclass(frozen=True)
class SearchHit:
    rank: int
    id: str
    path: str
    label: str | None
    similarity: float
    distance: float


@dataclass(frozen=True)
class SearchResult:
    query_id: str
    query_label: str | None
    query_path: str
    in_dataset: bool
    hits: list[SearchHit]
    score: float | None  # position-weighted score, None when labels are unknown
    precision_at_k: float | None
    metric: str
    backend: str = "exact"  # how the neighbours were found (exact scan or FAISS index, with its measured recall)
    crop: tuple[int, int, int, int] | None = None  # the query region (x, y, w, h in original pixels), if any
    score_k: int = SCORE_K  # the score and precision use the top 15, however many hits are shown

    def to_dict(self) -> dict:
        crop = None if self.crop is None else dict(zip(("x", "y", "w", "h"), self.crop))
        return {"query": {"id": self.query_id, "label": self.query_label, "path": self.query_path, "crop": crop},
                "metric": self.metric, "results": [asdict(h) for h in self.hits],
                "score": self.score, "precision_at_k": self.precision_at_k, "score_k": self.score_k,
                "backend": self.backend}


def resolve_query(ds: ImageDataset, query: str) -> tuple[int | None, Path]:
    """A dataset id, an index, or a path (inside the dataset or outside it)."""
    ids = ds.ids
    if query in ids:
        i = ids.index(query)
        return i, ds.items[i].path
    p = Path(query).expanduser()
    if p.is_file():
        real = p.resolve()
        for i, item in enumerate(ds.items):
            if item.path.resolve() == real:
                return i, item.path
        if not is_image_name(p):
            raise DatasetError(f"{p}: not an image file name")
        return None, p
    if query.isdigit() and int(query) < len(ids):
        i = int(query)
        return i, ds.items[i].path
    raise DatasetError(f"query {query!r} is neither an image id of {ds.name} (e.g. {ids[0]!r}), an index, nor an image file")


def search(model: str, layer: str, query: str, dataset: str | None = None, images: str | None = None,
           metric: str = "cosine", p: float | None = None, top_k: int = DEFAULT_K, pooling: str = "avg",
           progress: Progress | None = None, crop=None) -> SearchResult:
    """Most similar dataset images to a query (or to a ``crop`` region of it), with its search score."""
    from .region import Crop, crop_image

    ds = open_dataset(dataset, images=images)
    loaded = get_model(model)
    (layer,) = resolve_layers(loaded.spec, [layer])
    check_metric(metric, p)
    q_index, q_path = resolve_query(ds, query)
    crop = Crop.of(crop)
    if crop is not None:  # a bad box is refused before any feature work
        crop_image(q_path, crop)
    elif q_index is None:  # an outside image: refuse a bad file before any feature work or cache write
        load_for_model(q_path, loaded.spec.input_size)
    feats = extract_features(loaded, ds, [layer], pooling, progress=progress)[layer]
    return search_features(ds, feats, loaded, layer, query, metric, p, top_k, pooling, crop=crop)


def search_features(ds: ImageDataset, feats: np.ndarray, loaded: LoadedModel, layer: str, query: str | None,
                    metric: str, p: float | None, top_k: int, pooling: str = "avg",
                    query_image: bytes | None = None, query_name: str = "uploaded image",
                    index: tuple | None = None, crop=None) -> SearchResult:
    """Search with precomputed dataset features (the pages' warm path).

    The query is a dataset id / index / path (``query``), or raw image bytes
    (``query_image``, e.g. an upload), which has no class and so no score.
    ``index`` is a prebuilt ``(index, backend)`` from :func:`search_index` (pages keep one per setting).
    ``crop`` (a :class:`cnnviz.region.Crop`, ``(x, y, w, h)`` or ``"X,Y,W,H"`` in original-image pixels)
    searches with the features of that region; a dataset image's region keeps its class for the score
    and the image itself stays out of the results.
    """
    from .region import Crop, crop_for_model

    crop = Crop.of(crop)
    if query_image is not None:
        q_index, q_path, source = None, Path(query_name), query_image
    else:
        q_index, q_path = resolve_query(ds, query)
        source = q_path
    if crop is not None:
        pixels = crop_for_model(source, crop, loaded.spec.input_size, name=q_path.name)[None]
    elif q_index is None:
        pixels = load_for_model(source, loaded.spec.input_size, name=query_name if query_image is not None else None)[None]
    if q_index is not None and crop is None:
        q_vec, q_label, q_id = feats[q_index : q_index + 1], ds.items[q_index].label, ds.items[q_index].id
    else:
        q_vec = features_of_images(loaded, pixels, [layer], pooling)[layer]
        q_label, q_id = (None, q_path.name) if q_index is None else (ds.items[q_index].label, ds.items[q_index].id)
    index, backend = index or search_index(ds, feats, loaded, layer, metric, p, pooling)
    exclude = None if q_index is None else np.array([q_index])
    idx, dist = index.search(q_vec, max(top_k, SCORE_K), exclude=exclude)  # the score always uses the top 15
    idx, dist = idx[0], dist[0]
    sims = similarity(dist, metric)
    hits = [SearchHit(r + 1, ds.items[i].id, str(ds.items[i].path), ds.items[i].label, float(s), float(d))
            for r, (i, d, s) in enumerate(zip(idx, dist, sims))]
    scored = q_label is not None and ds.labelled and bool(hits)
    score, precision = hit_scores([[h.label == q_label for h in hits]], SCORE_K) if scored else ([None], [None])
    return SearchResult(
        q_id, q_label, str(q_path), q_index is not None, hits[:top_k],
        None if score[0] is None else float(score[0]), None if precision[0] is None else float(precision[0]),
        metric, backend.note, crop.as_tuple() if crop else None,
    )


def search_index(ds: ImageDataset, feats: np.ndarray, loaded: LoadedModel, layer: str, metric: str,
                 p: float | None = None, pooling: str = "avg", progress: Progress | None = None):
    """``(index, backend)``: exact below ``ANN_MIN_ROWS`` images, else a FAISS index built once and cached on disk."""
    from .ann import ANN_MIN_ROWS, get_index

    key = feature_key(ds.digest(), loaded, layer, pooling) if len(feats) >= ANN_MIN_ROWS else ""
    return get_index(feats, metric, key, p, progress)


def score_rows(loaded: LoadedModel, ds: ImageDataset, layers: str | Sequence[str] | None, metrics: Sequence[str],
               p: float | None = None, pooling: str = "avg", progress: Progress | None = None) -> list[dict]:
    """Mean search score, precision@15 and kNN accuracy of one model for every (layer, metric).

    Every image is a query up to 20,000 images, else a seeded sample with a 95% interval (``ci95``).

    ``layer_index`` (1–8, 9 = embedding) lines up layers of different models from early to late.
    """
    if not ds.labelled:
        raise DatasetError(f"{ds.name}: scores need labels (one sub-folder per class)")
    for m in metrics:
        check_metric(m, p)
    feats = extract_features(loaded, ds, layers, pooling, progress=progress)
    order = list(loaded.spec.all_layers)
    rows = []
    for layer, f in feats.items():
        for m in metrics:
            rep = evaluate_retrieval(f, ds.labels, m, p).to_dict()
            rows.append({"model": loaded.spec.name, "layer": layer, "layer_index": order.index(layer) + 1, "metric": m,
                         **{key: rep[key] for key in ("mean_score", "precision_at_k", "knn_accuracy", "n_images",
                                                      "n_queries", "ci95", "per_class")}})
    return rows


def evaluate(model: str, dataset: str | None = None, images: str | None = None, layers: str | None = "embedding",
             metrics: str | Sequence[str] = "cosine", p: float | None = None,
             pooling: str = "avg", progress: Progress | None = None) -> dict:
    """Mean search score, precision@15 and kNN accuracy per (layer, metric), with ``n_queries`` and ``ci95``."""
    ds = open_dataset(dataset, images=images)
    metric_list = list(METRICS) if metrics == "all" else ([metrics] if isinstance(metrics, str) else list(metrics))
    rows = score_rows(get_model(model), ds, layers, metric_list, p, pooling, progress)
    keep = ("layer", "metric", "mean_score", "precision_at_k", "knn_accuracy", "n_images", "n_queries", "ci95",
            "per_class")
    return {"dataset": ds.name, "model": model, "score_k": SCORE_K, "knn_k": DEFAULT_KNN_K, "pooling": pooling,
            "rows": [{key: r[key] for key in keep} for r in rows]}


def compare_models(dataset_ref: str, models: Sequence[str], metrics: Sequence[str], layers: str = "all",
                   p: float | None = None, pooling: str = "avg",
                   progress: Progress | None = None) -> list[dict]:
    """:func:`score_rows` for several models on one dataset (progress over all of them)."""
    ds = open_dataset(dataset_ref)
    rows = []
    for m_i, model in enumerate(models):
        step = (lambda done, total, m_i=m_i: progress(m_i * total + done, total * len(models))) if progress else None
        for r in score_rows(get_model(model), ds, layers, metrics, p, pooling, step):
            r.pop("per_class")
            ci = r.pop("ci95")  # a flat table: the half-width of the mean score's 95% interval (0: every image)
            r["mean_score_ci95"] = 0.0 if ci is None else (ci["mean_score"][1] - ci["mean_score"][0]) / 2
            rows.append(r)
    return rows


def featureviz(model: str, layer: str, channels: str | Sequence[int] = "auto", out: str | Path | None = None,
               steps: int = 64, count: int = EXPLORER_CHANNELS, progress: Progress | None = None) -> dict:
    """Activation-maximisation images of a layer's channels (``auto``: ``count`` evenly spaced), copied to ``out``."""
    import shutil

    from .featureviz import ActMaxConfig, evenly_spaced_channels, layer_channels, maximize_channels

    loaded = get_model(model)
    (layer,) = resolve_layers(loaded.spec, [layer])
    if channels == "auto":
        chosen = evenly_spaced_channels(layer_channels(loaded, layer), count)
    else:
        try:
            chosen = [int(c) for c in (channels.split(",") if isinstance(channels, str) else channels)]
        except ValueError:
            raise DatasetError(f"--channels must be 'auto' or comma-separated integers, got {channels!r}") from None
    visuals = maximize_channels(loaded, layer, chosen, ActMaxConfig(steps=steps), progress=progress)
    rows = []
    for v in visuals:
        path = v.image_path
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
            path = str(Path(out) / f"{model}_{layer}_ch{v.channel:04d}.png")
            shutil.copyfile(v.image_path, path)
        rows.append({"channel": v.channel, "image_path": path, "seconds": v.seconds,
                     "final_activation": v.final_activation, "gray_activation": v.baseline_activation})
    return {"model": model, "layer": layer, "steps": steps, "channels": rows}


def attribute(image: str | Path | bytes, model: str, methods: str | Sequence[str] = "gradcam", target: int | None = None,
              params: dict | None = None, auc_steps: int | None = None, deletion_baseline: str = "zeros",
              out: str | Path | None = None, image_name: str | None = None,
              progress: Progress | None = None) -> dict:
    """Attribution heatmaps of one image by one or more methods, each with deletion/insertion AUC.

    ``target`` defaults to the model's top-1 class. ``out`` writes the overlays as one PNG.
    """
    from .attribution import RISE_STEPS, FaithfulnessConfig, explain, predictions, resolve_methods
    from .attribution.render import blend, grid_png

    names = resolve_methods(methods)
    loaded = get_model(model)
    pixels = load_for_model(image, loaded.spec.input_size, name=image_name)
    faith = FaithfulnessConfig(steps=auc_steps or RISE_STEPS, deletion_baseline=deletion_baseline)
    results = []
    for i, name in enumerate(names):
        step = (lambda d, t, i=i: progress(i * t + d, t * len(names))) if progress else None
        results.append(explain(loaded, pixels, name, target, params, faith, step))
    if out is not None:
        cells = [[(f"{a.method}: {a.target.label[:22]} {a.target.probability:.2f}\n"
                   f"{a.faithfulness_text()} · {a.seconds:.1f} s",
                   blend(pixels, a.heatmap)) for a in results]]
        Path(out).write_bytes(grid_png(cells))
    return {"model": model, "image": image_name or (str(image) if not isinstance(image, bytes) else "uploaded image"),
            "top5": [p.to_dict() for p in predictions(loaded, pixels)], "results": [a.to_dict() for a in results],
            "out": str(out) if out else None}


def curation_key(ds: ImageDataset, loaded: LoadedModel, layer: str, pooling: str = "avg",
                 probe_models: Sequence[str] = ()) -> str:
    """Disk-cache key of :func:`curate`'s result for this dataset content, model, layer and settings."""
    return _curation_key(ds, loaded, layer, pooling, _curate_config(loaded.spec.name, probe_models))


def _curation_key(ds: ImageDataset, loaded: LoadedModel, layer: str, pooling: str, config) -> str:
    from .curate import curation_key as key_of

    return key_of(feature_key(ds.digest(), loaded, layer, pooling), config)


def _curate_config(model: str, probe_models: Sequence[str]):
    """The curation settings with ``probe_models`` (known names, without ``model`` itself, each once)."""
    from .curate import CurateConfig
    from .models.registry import get_model_spec

    others = tuple(dict.fromkeys(m for m in probe_models if m != model))
    for name in others:
        get_model_spec(name)  # an unknown name fails here, with the list of models
    return CurateConfig(probe_models=others)


def curate(model: str, dataset: str | None = None, images: str | None = None, layer: str = "embedding",
           pooling: str = "avg", progress=None, refresh: bool = False, probe_models: Sequence[str] = ()) -> dict:
    """Suspected label errors, near-duplicates, outliers, leaks between splits, per-class rates and a what-if score.

    cleanlab on cached features (see :mod:`cnnviz.curate`); cached on disk per dataset content, model, layer
    and settings. ``probe_models``: other models whose label-issue probes are averaged with this one's (their
    features are computed when missing). ``progress(stage, done, total)`` reports each stage; ``refresh``
    recomputes.
    """
    from .curate import curate_features, load_curation, probe_feature_set, save_curation
    from .data import open_dataset

    if (dataset is None) == (images is None):
        raise DatasetError("give exactly one of a dataset name or an images folder/zip")
    ds = open_dataset(dataset if images is None else Path(images))
    loaded = get_model(model)
    (layer,) = resolve_layers(loaded.spec, [layer])
    config = _curate_config(loaded.spec.name, probe_models)
    key = _curation_key(ds, loaded, layer, pooling, config)
    result = None if refresh else load_curation(key)
    if result is None:
        step = (lambda d, t: progress("extracting features", d, t)) if progress else None
        probe_feats, probe_note = probe_feature_set(loaded, ds, layer, pooling, step)  # the probe may pick other layers
        feats = probe_feats[layer]
        per_model, notes = {loaded.spec.name: probe_feats}, [probe_note]
        for other in config.probe_models:  # their best layers are averaged in (one pass each when not cached)
            other_loaded = get_model(other)
            per_model[other], note = probe_feature_set(other_loaded, ds, other_loaded.spec.embedding_layer, pooling, step)
            notes.append(note)
        index, _ = search_index(ds, feats, loaded, layer, config.metric, None, pooling,
                                (lambda d, t: progress("building the search index", d, t)) if progress else None)
        result = curate_features(ds, feats, index, config, progress, per_model)
        if result["probe"]:
            result["notes"] += [n for n in notes if n]
        save_curation(key, result)
    return {"model": model, "layer": layer, "pooling": pooling, **result}


def benchmark(models: str | Sequence[str] = "all", dataset: str | ImageDataset | None = None,
              images: str | Path | None = None, batch_sizes: Sequence[int] = (1, 32), runs: int = 20,
              throughput_runs: int = 3, use_cache: bool = True, progress: Progress | None = None) -> dict:
    """Latency, throughput, FLOPs, size and (on a labelled dataset) accuracy of models on this machine;
    ``progress(i, n)`` as the i-th model starts."""
    from .benchmark import run_benchmark

    ds = dataset if isinstance(dataset, ImageDataset) or dataset is None and images is None else \
        open_dataset(dataset, images=images)
    return run_benchmark(models, ds, list(batch_sizes), runs, throughput_runs, progress=progress, use_cache=use_cache)


def bench_search(n: int, dim: int, **options) -> dict:
    """Exact search against the FAISS index on synthetic data (see :func:`cnnviz.bench_search.bench_search`)."""
    from .bench_search import bench_search as run

    return run(n, dim, **options)


def cache_info() -> dict:
    """Where the cache is and what each artifact kind holds."""
    from . import cache

    return cache.cache_info()


def clear_cache(kind: str | None = None):
    """Remove one artifact kind, or everything; returns what was removed."""
    from . import cache

    return cache.clear_cache(kind)


def export_dataset(name: str, out: str | Path, split: str = "test", progress: Progress | None = None) -> dict:
    """Write a packaged dataset (e.g. Fashion-MNIST from Debian) as an ImageFolder at ``out``."""
    from .data.export import export_dataset as export

    return export(name, out, split, progress)


def adapt(model: str, dataset: str | None = None, images: str | None = None, layer: str | None = None,
          method: str | None = None, epochs: int | None = None, holdout: float = 0.5, seed: int = 0,
          name: str | None = None, progress: Progress | None = None, pooling: str | None = None) -> dict:
    """Train an adapted search embedding on frozen features; before/after measured on held-out images only."""
    from . import adapt as adapt_module

    return adapt_module.adapt(model, dataset, images, layer or adapt_module.DEFAULT_LAYER,
                              method or adapt_module.DEFAULT_METHOD,
                              epochs, holdout, seed, name, progress,  # epochs None: the method's default
                              pooling=pooling or adapt_module.DEFAULT_POOLING)
