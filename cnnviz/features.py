"""One forward pass → pooled features of many layers, batched and cached.

For each (model, layers, pooling) we build one multi-output Keras model whose
outputs are every requested tap, pooled inside the graph, and call it once per
batch. Each layer's features are cached on disk per (dataset content digest,
model identity, layer, pooling, code version); the model identity is
:func:`cnnviz.models.build.model_identity` (weights sha256, converter,
image-preparation and library versions).
"""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import cache
from .data.folder import ImageDataset
from .data.images import load_for_model
from .errors import UnknownNameError
from .models.build import LoadedModel, model_identity
from .models.registry import ModelSpec
from .progress import Progress

log = logging.getLogger(__name__)

POOLINGS = ("avg", "max", "grid2")
FEATURES_VERSION = 3  # bump when extraction or storage changes (2: memory-mapped .npy, 3: model identity in the key)



@dataclass(frozen=True)
class LayerInfo:
    """A tap: its raw output shape and the size of its pooled vector."""

    name: str
    shape: tuple[int, ...]  # without batch: (H, W, C) or (C,)
    pooled_dim: int


def resolve_layers(spec: ModelSpec, layers: str | Sequence[str | int] | None = None) -> list[str]:
    """Normalise a layer selection to names.

    Accepts None or "all" (8 layers + embedding), "embedding", a comma list,
    or a sequence of names and (negative) indices into ``spec.all_layers``.
    """
    available = list(spec.all_layers)
    if layers is None or layers == "all":
        return available
    if isinstance(layers, str):
        layers = [s.strip() for s in layers.split(",") if s.strip()]
    out, unknown = [], []
    for sel in layers:
        if isinstance(sel, int) or (isinstance(sel, str) and sel.lstrip("-").isdigit()):
            i = int(sel)
            if -len(available) <= i < len(available):
                out.append(available[i])
            else:
                unknown.append(str(sel))
        elif sel == "embedding":
            out.append(spec.embedding_layer)
        elif sel in available:
            out.append(sel)
        else:
            unknown.append(str(sel))
    if unknown:
        raise UnknownNameError(f"{spec.name} has no layer {', '.join(unknown)}; choose from: {', '.join(available)} (or 'embedding', 'all')")
    return list(dict.fromkeys(out))


class FeatureExtractor:
    """A multi-output model: every requested layer, pooled, in one forward pass."""

    def __init__(self, loaded: LoadedModel, layers: Sequence[str], pooling: str = "avg"):
        import keras

        from .models.layers import GridPool

        if pooling not in POOLINGS:
            raise UnknownNameError(f"unknown pooling {pooling!r}; choose one of: {', '.join(POOLINGS)}")
        self.loaded, self.layers, self.pooling = loaded, list(layers), pooling
        model = loaded.model
        outputs, infos = [], []
        for name in self.layers:
            t = model.get_layer(name).output
            shape = tuple(int(d) for d in t.shape[1:])
            if len(shape) == 3:
                if pooling == "avg":
                    t = keras.layers.GlobalAveragePooling2D(name=f"{name}__avg")(t)
                elif pooling == "max":
                    t = keras.layers.GlobalMaxPooling2D(name=f"{name}__max")(t)
                else:
                    t = GridPool(2, name=f"{name}__grid2")(t)
            outputs.append(t)
            infos.append(LayerInfo(name, shape, int(t.shape[-1])))
        self.info = infos
        self.model = keras.Model(model.inputs, outputs, name=f"{model.name}_features")

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        out = self.model.predict_on_batch(np.asarray(batch, np.float32))
        out = out if isinstance(out, (list, tuple)) else [out]
        return [np.asarray(o, np.float32) for o in out]


def get_extractor(loaded: LoadedModel, layers: Sequence[str], pooling: str = "avg") -> FeatureExtractor:
    """The extractor for these taps, built once per model (and dropped with it)."""
    return loaded.memo(("features", tuple(layers), pooling), lambda: FeatureExtractor(loaded, layers, pooling))


def layer_infos(loaded: LoadedModel, pooling: str = "avg") -> list[LayerInfo]:
    """Shapes and pooled sizes of the model's 8 layers and embedding."""
    return get_extractor(loaded, loaded.spec.all_layers, pooling).info


def feature_key(dataset_digest: str, loaded: LoadedModel, layer: str, pooling: str) -> str:
    """Cache key of one layer's features: dataset content, model identity (weights sha256, converter,
    image preparation, library versions), layer, pooling and the feature code version."""
    return cache.make_key("features", dataset=dataset_digest, identity=model_identity(loaded), layer=layer,
                          pooling=pooling, version=FEATURES_VERSION)


def load_dataset_images(dataset: ImageDataset, indices: Sequence[int], size: int) -> np.ndarray:
    return np.stack([load_for_model(dataset.items[i].path, size, name=dataset.items[i].id) for i in indices])


ENGINES = ("local", "ray")
CHUNK_IMAGES = 1024  # images per resumable chunk


def extract_features(
    loaded: LoadedModel,
    dataset: ImageDataset,
    layers: str | Sequence[str | int] | None = None,
    pooling: str = "avg",
    batch_size: int = 32,
    progress: Progress | None = None,
    engine: str = "local",
    chunk_size: int = CHUNK_IMAGES,
    ray_address: str | None = None,
) -> dict[str, np.ndarray]:
    """Pooled float32 features ``{layer: (N, D)}`` for every image of a dataset (memory-mapped, read-only).

    Cached layers are read from disk; all missing layers are computed together
    in one pass over the images, ``chunk_size`` images at a time. Each finished
    chunk is saved, so an interrupted run resumes where it stopped; the layer
    matrices are assembled from the chunks at the end. ``engine="ray"`` computes
    the chunks on a Ray cluster (local, or ``ray_address``) instead of in this process.
    """
    if engine not in ENGINES:
        raise UnknownNameError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    names = resolve_layers(loaded.spec, layers)
    if getattr(loaded, "adapted", None) is not None:  # an adapted model: the projection of its base model's cached features
        from .adapt import adapted_features

        return adapted_features(loaded, dataset, names, pooling, batch_size=batch_size, progress=progress,
                                engine=engine, chunk_size=chunk_size, ray_address=ray_address)
    digest = dataset.digest()
    keys = {n: feature_key(digest, loaded, n, pooling) for n in names}
    result: dict[str, np.ndarray] = {}
    for n in names:
        hit = cache.load_matrix("features", keys[n])
        if hit is not None:
            result[n] = hit
    missing = [n for n in names if n not in result]
    if missing:
        meta = {"model": loaded.spec.name, "weights": loaded.weights, "pooling": pooling, "dataset": dataset.name,
                "dataset_digest": digest, "n_images": len(dataset.items)}
        result.update(_compute_chunked(loaded, dataset, missing, pooling, batch_size, progress, {n: keys[n] for n in missing},
                                       meta, engine, chunk_size, ray_address))
    elif progress:
        progress(len(dataset.items), len(dataset.items))
    return {n: result[n] for n in names}


def compute_range(loaded: LoadedModel, paths: Sequence[str], ids: Sequence[str], layers: Sequence[str], pooling: str,
                  batch_size: int) -> dict[str, np.ndarray]:
    """Features of a list of image files, in batches (the unit of work of every engine)."""
    extractor = get_extractor(loaded, layers, pooling)
    size = loaded.spec.input_size
    out = {name: np.empty((len(paths), info.pooled_dim), np.float32) for name, info in zip(layers, extractor.info)}
    for start in range(0, len(paths), batch_size):
        stop = min(start + batch_size, len(paths))
        batch = np.stack([load_for_model(paths[i], size, name=ids[i]) for i in range(start, stop)])
        for name, arr in zip(layers, extractor(batch)):
            out[name][start:stop] = arr
    return out


def _chunk_name(start: int) -> str:
    return f"{start:010d}"


def _compute_chunked(loaded, dataset, layers, pooling, batch_size, progress, keys, meta, engine, chunk_size,
                     ray_address) -> dict[str, np.ndarray]:
    n = len(dataset.items)
    chunk_kind = "feature-chunks/" + cache.make_key("feature-chunks", keys=sorted(keys.values()), chunk=chunk_size)[:32]
    starts = list(range(0, n, chunk_size))
    todo = [s for s in starts if not cache.has_arrays(chunk_kind, _chunk_name(s))]
    done = [len(dataset.items[s : s + chunk_size]) for s in starts if s not in todo]
    counted = sum(done)
    if progress:
        progress(counted, n)

    def save_chunk(start: int, arrays: dict[str, np.ndarray]) -> None:
        nonlocal counted
        cache.save_arrays(chunk_kind, _chunk_name(start), arrays, {"start": start, "layers": list(layers)})
        counted += len(next(iter(arrays.values())))
        if progress:
            progress(counted, n)

    def work(start: int) -> tuple[list[str], list[str]]:
        items = dataset.items[start : start + chunk_size]
        return [str(i.path) for i in items], [i.id for i in items]

    if todo and engine == "ray":
        from .ray_engine import compute_chunks

        compute_chunks(loaded.spec.name, {s: work(s) for s in todo}, layers, pooling, batch_size, save_chunk, ray_address)
    else:
        for s in todo:
            save_chunk(s, compute_range(loaded, *work(s), layers, pooling, batch_size))
    dims = {info.name: info.pooled_dim for info in get_extractor(loaded, layers, pooling).info}
    with contextlib.ExitStack() as stack:
        outs = {layer: stack.enter_context(cache.writing_matrix("features", keys[layer], (n, dims[layer]), {**meta, "layer": layer}))
                for layer in layers}
        for s in starts:
            hit = cache.load_arrays(chunk_kind, _chunk_name(s))
            # A chunk can vanish if another process finishing the same key cleaned up: recompute it.
            arrays = hit[0] if hit else compute_range(loaded, *work(s), layers, pooling, batch_size)
            for layer in layers:
                outs[layer][s : s + len(arrays[layer])] = arrays[layer]
    result = {layer: cache.load_matrix("features", keys[layer]) for layer in layers}
    try:
        cache.safe_remove(cache.entry_dir(chunk_kind))
    except OSError as exc:  # another process computing the same key wrote a chunk meanwhile: it cleans up after itself
        if exc.errno != errno.ENOTEMPTY:
            raise
    return result


def features_of_images(loaded: LoadedModel, images: np.ndarray, layers: Sequence[str], pooling: str = "avg") -> dict[str, np.ndarray]:
    """Features of already-prepared images (N, S, S, 3), not cached (e.g. a query upload)."""
    extractor = get_extractor(loaded, layers, pooling)
    return dict(zip(layers, extractor(images)))
