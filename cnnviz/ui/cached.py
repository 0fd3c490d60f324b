"""Streamlit caching around the library: models as resources, arrays as data.

Pages call these (and plain library functions), so nothing heavy is
recomputed on a rerun. Long first calls show a progress bar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from .. import overview, workflows
from ..data import ImageDataset, dataset_fingerprint, open_dataset
from ..features import extract_features, feature_key, layer_infos
from ..models.build import LoadedModel
from ..projection import ProjectionConfig, umap_ready, warm_up_umap
from . import charts
from .jobs import BackgroundJob, submit

# Dataset views (report, map) of more images than this are computed in the background job pool. The report
# grows as N²: 1,000 × 1280 takes about 0.4 s on this 2-core VM (2,000: 1.6 s, 10,000: 7-12 s), so below
# this a progress bar would only flash.
BACKGROUND_ABOVE = 1_000


def model(name: str) -> LoadedModel:
    """A built model shared by every session (read-only), from the process's one bounded model cache
    (:func:`cnnviz.workflows.get_model`, which the CLI uses too)."""
    return workflows.get_model(name)


def dataset(ref: str) -> ImageDataset:
    """A dataset by sample name or folder/zip path: scanned once, and again when its folder changes
    (a few ``stat`` calls per rerun, see :func:`cnnviz.data.dataset_fingerprint`)."""
    return _dataset(ref, dataset_fingerprint(ref))


@st.cache_resource(show_spinner=False, max_entries=32)
def _dataset(ref: str, fingerprint: tuple) -> ImageDataset:
    return open_dataset(ref)


def dataset_digest(ref: str) -> str:
    """The dataset's content digest (every image's id and bytes), rehashed only when its fingerprint moves
    (and then only changed files: file digests are memoised by size and mtime)."""
    return _digest(ref, dataset_fingerprint(ref))


@st.cache_data(show_spinner=False, max_entries=64)
def _digest(ref: str, fingerprint: tuple) -> str:
    return _dataset(ref, fingerprint).digest()


@st.cache_data(show_spinner=False)
def reference_benchmarks() -> list[dict]:
    """Benchmark results shipped from other machines (benchmarks/results), read once per server."""
    from ..benchmark import reference_results

    return reference_results()


@st.cache_resource(show_spinner=False)
def umap_warm_up() -> None:
    """Start compiling UMAP in the background, once per server process."""
    warm_up_umap()


def _bar(text: str):
    bar = st.progress(0.0, text=text)
    return bar, lambda done, total: bar.progress(done / max(total, 1), text=f"{text} {done}/{total} images")


def features(model_name: str, dataset_ref: str, layer: str, pooling: str = "avg") -> np.ndarray:
    """Pooled features of one layer; the first call extracts every layer in one pass.

    A resource, not data: the matrix is a read-only memory map of the disk cache, shared by
    every session as is (``cache_data`` would pickle a copy of it per call). Keyed by the dataset's
    content digest, so a folder that changes is re-extracted, not served stale.
    """
    return _features(model_name, dataset_ref, dataset_digest(dataset_ref), layer, pooling)


@st.cache_resource(show_spinner=False, max_entries=64)
def _features(model_name: str, dataset_ref: str, digest: str, layer: str, pooling: str) -> np.ndarray:
    loaded, ds = model(model_name), dataset(dataset_ref)
    bar, update = _bar(f"Extracting {model_name} features of {ds.name}:")
    try:
        return extract_features(loaded, ds, "all", pooling, progress=update)[layer]
    finally:
        bar.empty()


def search_index(model_name: str, dataset_ref: str, layer: str, metric: str, p: float | None, pooling: str = "avg"):
    """``(index, backend)`` per setting: exact (norms precomputed once) or a FAISS index above 100k images."""
    return _search_index(model_name, dataset_ref, dataset_digest(dataset_ref), layer, metric, p, pooling)


@st.cache_resource(show_spinner=False, max_entries=64)
def _search_index(model_name: str, dataset_ref: str, digest: str, layer: str, metric: str, p: float | None,
                  pooling: str):
    bar, update = _bar("Building the search index:")
    try:
        return workflows.search_index(dataset(dataset_ref), features(model_name, dataset_ref, layer, pooling),
                                      model(model_name), layer, metric, p, pooling, update)
    finally:
        bar.empty()


@st.cache_data(show_spinner=False, max_entries=16)
def layer_table(model_name: str, pooling: str = "avg") -> pd.DataFrame:
    infos = layer_infos(model(model_name), pooling)
    return pd.DataFrame([{"layer": i.name, "shape": "×".join(map(str, i.shape)), "pooled": i.pooled_dim} for i in infos])


def features_key(model_name: str, dataset_ref: str, layer: str, pooling: str = "avg") -> str:
    """The disk-cache key of a layer's features (dataset content, model identity, layer, pooling)."""
    return feature_key(dataset_digest(dataset_ref), model(model_name), layer, pooling)


def retrieval_report(model_name: str, dataset_ref: str, layer: str, metric: str, p: float | None,
                     pooling: str = "avg") -> tuple[dict | None, BackgroundJob | None]:
    """Dataset-wide search score for one setting (mean, per class, per query), or ``(None, job)`` while a
    background job computes it for a large dataset (see :func:`_overview`)."""
    key = overview.report_key(features_key(model_name, dataset_ref, layer, pooling), metric, p)
    feats, labels = features(model_name, dataset_ref, layer, pooling), dataset(dataset_ref).labels
    return _overview(key, _stored_report, "Scoring every image of the dataset as a query", len(labels),
                     lambda progress: overview.compute_report(key, feats, labels, metric, p, progress))


def projection(model_name: str, dataset_ref: str, layer: str, pooling: str, method: str,
               metric: str) -> tuple[np.ndarray | None, BackgroundJob | None]:
    """2-D map of a layer's features (UMAP or PCA), or ``(None, job)`` while a background job fits it."""
    config = ProjectionConfig(method=method, metric=metric)
    key = overview.projection_key(features_key(model_name, dataset_ref, layer, pooling), config)
    feats = features(model_name, dataset_ref, layer, pooling)
    return _overview(key, _stored_projection, f"Fitting the {method.upper()} map", len(feats),
                     lambda progress: overview.compute_projection(key, feats, config))


@dataclass
class MapView:
    """What the map shows: the asked projection, or PCA while UMAP compiles or is fitted in the background."""

    asked: str
    method: str  # the projection of ``points``
    points: np.ndarray | None  # None: nothing to draw yet (``job`` computes it)
    job: BackgroundJob | None = None  # fitting the asked projection
    compiling: bool = False  # UMAP's numba code is still compiling in this process
    metric: str = ""  # the metric ``points`` were projected with (UMAP's depends on it)


def map_view(model_name: str, dataset_ref: str, layer: str, pooling: str, method: str, metric: str) -> MapView:
    """The map for a page: UMAP when it is ready, else PCA meanwhile (instant: 0.7 s at 10,000 × 1280)."""
    job, compiling = None, method == "umap" and not umap_ready()
    if method == "umap" and not compiling:
        points, job = projection(model_name, dataset_ref, layer, pooling, "umap", metric)
        if points is not None:
            return MapView(method, "umap", points, metric=metric)
    points, pca_job = projection(model_name, dataset_ref, layer, pooling, "pca", metric)
    return MapView(method, "pca", points, job or pca_job, compiling, metric)


def _overview(key: str, stored, name: str, n: int, compute) -> tuple[object | None, BackgroundJob | None]:
    """A dataset view from memory or the disk cache; else computed here for small datasets, or in the shared
    background pool above :data:`BACKGROUND_ABOVE` images (merged across sessions) while the page stays usable."""
    value = stored(key)  # a hit is served from memory: no disk read on a rerun
    if value is not None:
        return value, None
    stored.clear(key)  # a miss must not be remembered: the job below fills the disk cache
    if n <= BACKGROUND_ABOVE:
        return compute(None), None
    return None, submit(("overview", key), name, compute)


@st.cache_data(show_spinner=False, max_entries=128)
def _stored_report(key: str) -> dict | None:
    return overview.load_report(key)


@st.cache_data(show_spinner=False, max_entries=64)
def _stored_projection(key: str) -> np.ndarray | None:
    return overview.load_projection(key)


def comparison(dataset_ref: str, models: tuple[str, ...], metrics: tuple[str, ...], p: float | None) -> pd.DataFrame:
    """Every (model, layer, metric) score; extracts missing features with progress."""
    return _comparison(dataset_ref, dataset_digest(dataset_ref), models, metrics, p)


@st.cache_data(show_spinner=False, max_entries=32)
def _comparison(dataset_ref: str, digest: str, models: tuple[str, ...], metrics: tuple[str, ...],
                p: float | None) -> pd.DataFrame:
    bar, update = _bar("Extracting features for the comparison:")
    try:
        return pd.DataFrame(workflows.compare_models(dataset_ref, models, metrics, p=p, progress=update))
    finally:
        bar.empty()


@st.cache_data(show_spinner=False, max_entries=2048)
def thumbnail(path: str, size: int = 160) -> bytes:
    """A JPEG thumbnail as bytes (from the disk store): st.image sends bytes as-is (arrays are re-encoded every run)."""
    from ..thumbnails import thumbnail_bytes

    return thumbnail_bytes(path, size)


def thumbnail_uris(dataset_ref: str, indices: tuple[int, ...], size: int = 64) -> list[str]:
    """Small JPEG data URIs of these images only (for chart tooltips), from the disk store; memoised per image,
    not per list, so a new query's map re-reads nothing."""
    from ..thumbnails import data_uris

    items = dataset(dataset_ref).items
    return data_uris([items[i].path for i in indices], size)


def feature_map_spec(model_name: str, dataset_ref: str, layer: str, pooling: str, view: MapView,
                     roles: dict[str, str], title: str) -> tuple[dict, int]:
    """The map's Vega-Lite spec (see :func:`charts.feature_map_spec`) and how many points it draws, built once
    per (view, query and results) for every session; a copy to hand to ``st.vega_lite_chart``."""
    # Keyed by what decides the points (the projection and its metric), not by what was asked: PCA shown while
    # UMAP is fitted is the same map as PCA asked for.
    spec, drawn = _feature_map_spec(model_name, dataset_ref, dataset_digest(dataset_ref), layer, pooling, view.method,
                                    view.metric, tuple(sorted(roles.items())), title, view.points)
    return charts.fresh_spec(spec), drawn


@st.cache_resource(show_spinner=False, max_entries=16)
def _feature_map_spec(model_name: str, dataset_ref: str, digest: str, layer: str, pooling: str, method: str,
                      metric: str, roles: tuple[tuple[str, str], ...], title: str, _points: np.ndarray) -> tuple[dict, int]:
    from ..projection import points_to_draw

    ds = dataset(dataset_ref)
    role_of = dict(roles)
    drawn = points_to_draw(len(ds.ids), [ds.index_of(i) for i in role_of])
    ids = [ds.ids[i] for i in drawn]
    df = pd.DataFrame({"x": _points[drawn, 0], "y": _points[drawn, 1], "id": ids, "label": [ds.labels[i] or "-" for i in drawn],
                       "role": [role_of.get(i, "other") for i in ids], "image": thumbnail_uris(dataset_ref, tuple(drawn.tolist()))})
    return charts.feature_map_spec(df, title), len(drawn)


def featureviz_job(model_name: str, layer: str, channels: tuple[int, ...], steps: int):
    """One background job per (model, layer, channels, steps), shared by every session; one the pool
    stopped while nobody watched it (see :mod:`cnnviz.ui.jobs`) is submitted again."""
    job = _featureviz_job(model_name, layer, channels, steps)
    if job.finished and job.cancelled:
        _featureviz_job.clear(model_name, layer, channels, steps)
        job = _featureviz_job(model_name, layer, channels, steps)
    return job


@st.cache_resource(show_spinner=False, max_entries=32)
def _featureviz_job(model_name: str, layer: str, channels: tuple[int, ...], steps: int):
    from ..featureviz import ActMaxConfig, maximize_channels
    from .jobs import submit

    loaded = model(model_name)
    return submit(("featureviz", model_name, layer, channels, steps), f"featureviz-{layer}", lambda progress: maximize_channels(
        loaded, layer, channels, ActMaxConfig(steps=steps), progress=progress))


def channel_overlays(model_name: str, dataset_ref: str, layer: str, channel: int, indices: tuple[int, ...]) -> list[bytes]:
    """Top images with the channel's activation map blended over them (JPEG bytes)."""
    return _channel_overlays(model_name, dataset_ref, dataset_digest(dataset_ref), layer, channel, indices)


@st.cache_data(show_spinner=False, max_entries=64)
def _channel_overlays(model_name: str, dataset_ref: str, digest: str, layer: str, channel: int,
                      indices: tuple[int, ...]) -> list[bytes]:
    from PIL import Image

    from ..data.images import encode_image
    from ..featureviz import activation_maps, overlay
    from ..features import load_dataset_images

    loaded, ds = model(model_name), dataset(dataset_ref)
    images = load_dataset_images(ds, list(indices), loaded.spec.input_size)
    maps = activation_maps(loaded, layer, images, channel)
    return [encode_image(Image.fromarray(overlay(img, heat)).resize((160, 160)), "JPEG") for img, heat in zip(images, maps)]


@st.cache_data(show_spinner=False, max_entries=1024)
def stretched(path: str) -> bytes:
    """An act-max image contrast-stretched for display (1st–99th percentile → 0–255); the file stays raw."""
    from PIL import Image

    from ..data.images import encode_image

    img = np.asarray(Image.open(path).convert("RGB"), np.float32)
    lo, hi = np.percentile(img, 1), np.percentile(img, 99)
    return encode_image((img - lo) / max(hi - lo, 1.0) * 255)
