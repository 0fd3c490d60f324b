"""What a layer's channels respond to: activation maximization and top-activating images.

Activation maximization uses tf-keras-vis (`ActivationMaximization` with its
jitter/rotation input modifiers; total-variation + L1 regularizers keep the
images smooth rather than high-frequency noise). Images are optimised at the
network's input size and shown at about 128 px. All channels of one call are
optimised together as one batch.

(We tried a low-resolution parameterisation — a 128 px input resized inside
the graph by nesting the model — but calling a nested functional sub-model in
Keras 3.15 gave batch-dependent outputs, so the optimised image did not
reproduce its activation on its own. Optimising at input size avoids that.)

Top-activating dataset images come from the cached, average-pooled features
(the pooled value *is* the channel's mean activation), so they cost nothing.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import cache
from .data.images import encode_image
from .errors import UnknownNameError
from .models.build import LoadedModel, logits_model, model_identity
from .progress import Progress

FEATUREVIZ_VERSION = 1
EXPLORER_CHANNELS = 30  # channels the Model Explorer (and featureviz --channels auto) shows per layer


@dataclass(frozen=True)
class ActMaxConfig:
    steps: int = 64
    seed: int = 0
    tv_weight: float = 1.0
    l1_weight: float = 0.3


@dataclass(frozen=True)
class ChannelVisual:
    channel: int
    image_path: str  # PNG in the cache
    seconds: float  # this channel's share of the batch's optimisation time
    final_activation: float  # channel mean activation of the optimised image
    baseline_activation: float  # same for a mean-gray image, for comparison

    def to_dict(self) -> dict:
        return asdict(self)


def evenly_spaced_channels(n_channels: int, count: int = EXPLORER_CHANNELS) -> list[int]:
    """``count`` channel indices spread evenly over ``0 … n_channels − 1``."""
    if n_channels <= count:
        return list(range(n_channels))
    return sorted({int(round(i)) for i in np.linspace(0, n_channels - 1, count)})


def _layer_output(loaded: LoadedModel, layer: str):
    try:
        return loaded.model.get_layer(layer).output
    except ValueError:
        raise UnknownNameError(f"{loaded.spec.name} has no layer {layer!r}") from None


def layer_channels(loaded: LoadedModel, layer: str) -> int:
    return int(_layer_output(loaded, layer).shape[-1])


def layer_model(loaded: LoadedModel, layer: str):
    """Model from RGB pixels to one layer's output (built on the backbone graph, not nested)."""
    import keras

    return keras.Model(loaded.model.inputs, _layer_output(loaded, layer))


def _channel_means(out, channels: np.ndarray):
    import tensorflow as tf

    pooled = tf.reduce_mean(out, axis=(1, 2)) if len(out.shape) == 4 else out
    return tf.reduce_sum(pooled * tf.one_hot(channels, pooled.shape[-1]), axis=-1)


def _key(loaded: LoadedModel, layer: str, channel: int, config: ActMaxConfig) -> str:
    return cache.make_key("featureviz", identity=model_identity(loaded), layer=layer, channel=channel,
                          config=asdict(config), version=FEATUREVIZ_VERSION)


def cached_visual(loaded: LoadedModel, layer: str, channel: int, config: ActMaxConfig = ActMaxConfig()) -> ChannelVisual | None:
    meta = cache.entry_dir("featureviz") / f"{_key(loaded, layer, channel, config)}.json"
    if not meta.exists():
        return None
    try:
        v = ChannelVisual(**json.loads(meta.read_text()))
    except (ValueError, TypeError):
        cache.safe_remove(meta)
        return None
    if not Path(v.image_path).exists():
        return None
    cache.mark_used(meta)  # the quota's least-recently-used clock
    return v


def maximize_channels(loaded: LoadedModel, layer: str, channels: Sequence[int], config: ActMaxConfig = ActMaxConfig(),
                      batch: int = 8, progress: Progress | None = None) -> list[ChannelVisual]:
    """Activation-maximisation images of channels (cached per model, layer, channel and config)."""
    import tensorflow as tf
    from tf_keras_vis.activation_maximization import ActivationMaximization
    from tf_keras_vis.activation_maximization.regularizers import Norm, TotalVariation2D

    n = layer_channels(loaded, layer)
    bad = [c for c in channels if not 0 <= c < n]
    if bad:
        raise UnknownNameError(f"{layer} has channels 0–{n - 1}; got {bad}")
    results = {c: v for c in channels if (v := cached_visual(loaded, layer, c, config)) is not None}
    todo = [c for c in channels if c not in results]
    if progress:
        progress(len(results), len(channels))
    if todo:
        model = layer_model(loaded, layer)
        size = loaded.spec.input_size
        # clone=False: this private sub-model is not shared, and no model modifier is used.
        am = ActivationMaximization(model, clone=False)
        gray = np.full((1, size, size, 3), 127.5, np.float32)
        baseline = np.asarray(model(gray, training=False))
        rng = np.random.default_rng(config.seed)
        for start in range(0, len(todo), batch):
            chunk = np.array(todo[start : start + batch])
            seed = rng.uniform(112, 144, (len(chunk), size, size, 3)).astype(np.float32)
            t = time.perf_counter()
            imgs = am(lambda out, chunk=chunk: _channel_means(out, chunk), seed_input=tf.constant(seed),
                      steps=config.steps, input_range=(0, 255), callbacks=_step_reports(progress, len(results), len(channels)),
                      regularizers=[TotalVariation2D(weight=config.tv_weight), Norm(weight=config.l1_weight, p=1)])
            imgs = np.clip(np.asarray(imgs, np.float32), 0, 255)
            imgs = np.round(imgs)  # what the PNG will hold
            finals = np.asarray(_channel_means(model(imgs, training=False), chunk))
            base = np.asarray(_channel_means(np.repeat(baseline, len(chunk), axis=0), chunk))
            seconds = (time.perf_counter() - t) / len(chunk)
            for c, img, f, b in zip(chunk, imgs, finals, base):
                key = _key(loaded, layer, int(c), config)
                png = cache.entry_dir("featureviz") / f"{key}.png"
                with cache.atomic_path(png) as tmp:
                    tmp.write_bytes(encode_image(img))
                v = ChannelVisual(int(c), str(png), round(seconds, 3), float(f), float(b))
                cache.write_json_atomic(png.with_suffix(".json"), v.to_dict())
                results[int(c)] = v
            if progress:
                progress(len(results), len(channels))
    return [results[c] for c in channels]


def _step_reports(progress: Progress | None, done: int, total: int) -> list:
    """A tf-keras-vis callback that reports progress after every optimisation step, not only per batch of
    channels: a background job is stopped (or its page refreshed) at a report, so a batch of many slow
    steps must not hold a worker for minutes."""
    from tf_keras_vis.activation_maximization.callbacks import Callback

    class _Report(Callback):
        def __call__(self, i, values, grads, scores, model_outputs, **kwargs) -> None:
            progress(done, total)

    return [_Report()] if progress else []


def top_activating(pooled: np.ndarray, channel: int, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Indices and mean activations of the k dataset images that excite a channel most (descending)."""
    col = pooled[:, channel]
    idx = np.argsort(-col, kind="stable")[:k]
    return idx, col[idx]


def activation_maps(loaded: LoadedModel, layer: str, images: np.ndarray, channel: int) -> np.ndarray:
    """(N, H, W) maps of one channel for prepared images, resized to the images and scaled to [0, 1]."""
    import tensorflow as tf

    sub = layer_model(loaded, layer)
    maps = np.asarray(sub.predict_on_batch(np.asarray(images, np.float32)))[..., channel]
    maps = np.asarray(tf.image.resize(maps[..., None], images.shape[1:3], method="bilinear"))[..., 0]
    lo, hi = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
    return (maps - lo) / np.maximum(hi - lo, 1e-6)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a [0, 1] heatmap (viridis) over an RGB image; returns uint8."""
    from .attribution.render import blend

    return blend(image, heat, alpha, "viridis")


def visualize_classes(loaded: LoadedModel, class_ids: Sequence[int], config: ActMaxConfig = ActMaxConfig()) -> list[ChannelVisual]:
    """Class visualisation: maximise the pre-softmax score of ImageNet classes (cached like channels)."""
    if not loaded.spec.has_classifier:
        raise UnknownNameError(f"{loaded.spec.name} has no ImageNet classifier to visualise")
    view = dataclasses.replace(loaded, model=logits_model(loaded))  # same identity, logits instead of softmax
    return maximize_channels(view, "logits", list(class_ids), config)
