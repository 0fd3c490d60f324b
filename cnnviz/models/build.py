"""Build Keras models from registry specs, with trained weights where possible.

Converted weights (PyTorch state dicts, ONNX initializers) are converted once
and cached as Keras ``.weights.h5`` under the cache; every later build loads
that file.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata as md
import logging
import os
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import cache
from ..errors import WeightsUnavailableError
from .registry import ModelSpec, get_model_spec
from .weights import check_weights_file, install_hint, weights_digest, weights_path

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1  # bump when a port's layer mapping changes: old conversions become misses


@dataclass(frozen=True)
class LoadedModel:
    """A built model and where its weights came from."""

    spec: ModelSpec
    model: "object"  # keras.Model (kept untyped so importing this module stays light)
    weights: str  # "imagenet" | "random"
    # sha256 of the weight file it was built from; random weights get a fresh id per build (never shared).
    weights_sha256: str = ""
    # Things built from this model (feature extractors, attributors): they live and die with it, so the one
    # bounded model cache (workflows.get_model) bounds them too. Not copied by dataclasses.replace.
    derived: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def memo(self, key: Any, make, limit: int = 32):
        """``make()`` once per key for this model; at most ``limit`` entries (oldest dropped)."""
        if key not in self.derived:
            while len(self.derived) >= limit:
                self.derived.pop(next(iter(self.derived)))
            self.derived[key] = make()
        return self.derived[key]

    @property
    def trained(self) -> bool:
        return self.weights == "imagenet"


_LIBRARIES = ("keras", "tensorflow", "tensorflow-cpu", "jax", "numpy", "pillow", "h5py", "onnx")


_PROCESS_TOKEN = uuid.uuid4().hex


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Versions of every library between a weights file and a feature (installed ones only)."""
    out = {}
    for pkg in _LIBRARIES:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def model_identity(loaded: LoadedModel) -> dict[str, Any]:
    """Everything that decides what a model computes: the one model part of every cache key.

    The weights file's sha256 (not the label "imagenet"), the converter and image-preparation
    versions, the model's input and preprocessing, and library versions. Changing any of these
    makes old features, attributions, feature-visualisation images and indexes misses.
    """
    from ..data.images import IMAGE_PREP, IMAGE_PREP_VERSION

    spec = loaded.spec
    # A model built without a file id is never shared beyond this process (and this model object).
    weights_id = loaded.weights_sha256 or f"unidentified-{_PROCESS_TOKEN}-{id(loaded.model)}"
    return {"model": spec.name, "weights": loaded.weights, "weights_sha256": weights_id,
            "converter": CONVERTER_VERSION, "input_size": spec.input_size, "preprocessing": spec.preprocessing,
            "image_prep": f"{IMAGE_PREP}-v{IMAGE_PREP_VERSION}", "libraries": library_versions()}


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
        if source is not None:
            check_weights_file(spec, source)  # a damaged file is an error naming it, never random weights
        weights = str(source) if source else ("imagenet" if not _offline() else None)
        if weights is None:
            return _keras_app(spec, None), None
        try:
            with contextlib.redirect_stdout(sys.stderr):  # Keras prints download progress to stdout
                model = _keras_app(spec, weights)
        except Exception as exc:
            if source is not None:
                raise WeightsUnavailableError(f"{spec.name}: weights file {source} does not load ({exc}); "
                                              f"delete or replace it ({install_hint(spec)})") from exc
            log.warning("%s: downloading ImageNet weights failed (%s); no trained weights", spec.name, exc)
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
    if spec.builder == "adapted":  # a saved adapted model: its base model plus a trained projection
        from ..adapt import build_adapted

        return build_adapted(spec, require_weights)
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
        return LoadedModel(spec, model, "random", f"random-{uuid.uuid4().hex}")
    if spec.builder != "keras":
        _load_converted(spec, source, model, loader)
    source = source or weights_path(spec)  # a Keras download lands in ~/.keras/models
    return LoadedModel(spec, model, "imagenet", weights_digest(source) if source else "")


def _load_converted(spec: ModelSpec, source: Path, model, loader) -> None:
    key = cache.make_key("weights", model=spec.name, source=source.name, digest=weights_digest(source),
                         converter=CONVERTER_VERSION)
    target = cache.entry_dir("weights") / f"{spec.name}-{key[:16]}.weights.h5"
    if target.exists():
        try:
            model.load_weights(str(target))
            return
        except Exception as exc:  # a damaged conversion is redone, not trusted
            log.warning("discarding unreadable converted weights %s: %s", target.name, exc)
            cache.safe_remove(target)
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
