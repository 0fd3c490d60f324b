"""Build Keras models from registry specs, with trained weights where possible.

Converted weights (PyTorch state dicts, ONNX initializers) are converted once
and cached as Keras ``.weights.h5`` under the cache; every later build loads
that file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import cache
from ..errors import WeightsUnavailableError
from .registry import ModelSpec, get_model_spec
from .weights import install_hint, weights_path

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1  # bump when a port's layer mapping changes: old conversions become misses


@dataclass(frozen=True)
class LoadedModel:
    """A built model and where its weights came from."""

    spec: ModelSpec
    model: "object"  # keras.Model (kept untyped so importing this module stays light)
    weights: str  # "imagenet" | "random"

    @property
    def trained(self) -> bool:
        return self.weights == "imagenet"


def _architecture(spec: ModelSpec, source: Path | None):
    """Return (model, loader) where loader(model) copies the source weights in."""
    if spec.builder == "efficientnet_lite":
        from . import efficientnet_lite as lite
        from .torch_legacy import load_legacy_state_dict

        if source is None:
            raise WeightsUnavailableError(f"{spec.name}: architecture is read from the weight file; {install_hint(spec)}")
        state = load_legacy_state_dict(source)
        blocks = lite.infer_blocks(state)
        return lite.build_architecture(blocks, spec.input_size), lambda m: lite.load_state_dict(m, blocks, state)
    if spec.builder == "mobilenet_v2_tv":
        from . import mobilenet_v2_torchvision as mb
        from .torch_legacy import load_legacy_state_dict

        if source is None:
            raise WeightsUnavailableError(f"{spec.name}: architecture is read from the weight file; {install_hint(spec)}")
        state = load_legacy_state_dict(source)
        return mb.build_architecture(state, spec.input_size), lambda m: mb.load_state_dict(m, state)
    if spec.builder == "vgg16_onnx":
        from . import vgg16_onnx as vgg

        model = vgg.build_architecture(spec.input_size)
        return model, (lambda m: vgg.load_weights(m, vgg.read_conv_weights(source))) if source else None
    if spec.builder == "keras":
        # Keras' own loader handles its .h5 files; with no local file it tries
        # the real download (weights="imagenet"), which fails fast offline.
        weights = str(source) if source else ("imagenet" if not _offline() else None)
        if weights is None:
            return _keras_app(spec, None), None
        try:
            with contextlib.redirect_stdout(sys.stderr):  # Keras prints download progress to stdout
                model = _keras_app(spec, weights)
        except Exception as exc:
            log.info("%s: weights=%s failed (%s); building with random weights", spec.name, weights, exc)
            return _keras_app(spec, None), None
        return model, (lambda m: None)
    raise ValueError(f"unknown builder {spec.builder!r}")


def _offline() -> bool:
    """CNNVIZ_OFFLINE=1 skips Keras weight downloads (tests, air-gapped servers)."""
    return os.environ.get("CNNVIZ_OFFLINE", "") not in ("", "0")


def _keras_app(spec: ModelSpec, weights: str | None):
    import keras

    from .layers import Preprocess

    inputs = keras.Input((spec.input_size, spec.input_size, 3), name="image")
    x = Preprocess(spec.preprocessing, name="preprocess")(inputs)
    base = getattr(keras.applications, spec.keras_app)(weights=weights, input_tensor=x)
    return keras.Model(inputs, base.output, name=spec.name)


def build_model(name: str, *, require_weights: bool = True) -> LoadedModel:
    """Build a registry model with its ImageNet weights.

    With ``require_weights=False`` a model whose weights are missing is built
    with random weights (useful for latency only) and labelled ``random``.
    """
    spec = get_model_spec(name)
    source = weights_path(spec)
    if source is None and require_weights and spec.builder != "keras":
        raise WeightsUnavailableError(f"{spec.name} has no weights on this machine; {install_hint(spec)}")
    model, loader = _architecture(spec, source)
    if loader is None and require_weights:
        raise WeightsUnavailableError(
            f"{spec.name} has no ImageNet weights on this machine, and random weights would make "
            f"this task meaningless; {install_hint(spec)}"
        )
    if loader is None:
        log.warning("%s: no trained weights here; using random weights (latency only)", spec.name)
        return LoadedModel(spec, model, "random")
    if spec.builder != "keras":
        _load_converted(spec, source, model, loader)
    return LoadedModel(spec, model, "imagenet")


def _load_converted(spec: ModelSpec, source: Path, model, loader) -> None:
    key = cache.make_key("weights", model=spec.name, source=source.name, digest=cache.file_digest(source),
                         converter=CONVERTER_VERSION)
    target = cache.entry_dir("weights") / f"{spec.name}-{key[:16]}.weights.h5"
    if target.exists():
        try:
            model.load_weights(str(target))
            return
        except Exception as exc:  # a damaged conversion is redone, not trusted
            log.warning("discarding unreadable converted weights %s: %s", target.name, exc)
            target.unlink(missing_ok=True)
    loader(model)
    with cache.atomic_path(target) as tmp:
        model.save_weights(str(tmp))


def logits_model(loaded: LoadedModel):
    """The classifier with its softmax replaced by a linear ``logits`` layer.

    A new graph over the same layers: the shared model is not modified (unlike
    tf-keras-vis' ``ReplaceToLinear``, which mutates the model it is given).
    Gradient and CAM methods differentiate logits, as their papers do.
    """
    import keras

    if not loaded.spec.has_classifier:
        raise WeightsUnavailableError(f"{loaded.spec.name} has convolutional features only, no ImageNet classifier")
    dense = loaded.model.get_layer("predictions")
    logits = keras.layers.Dense(dense.units, name="logits")
    out = logits(dense.input)
    logits.set_weights(dense.get_weights())
    return keras.Model(loaded.model.inputs, out, name=f"{loaded.spec.name}_logits")
