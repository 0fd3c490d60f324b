"""Shared fixtures: an isolated cache, tiny datasets, real sample photos."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["CNNVIZ_OFFLINE"] = "1"  # never try Keras weight downloads in tests

import numpy as np
import pytest
from PIL import Image

SAMPLES = Path(__file__).resolve().parent.parent / "cnnviz" / "data" / "samples"


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """One cache for the session (converted weights are reused across tests)."""
    root = tmp_path_factory.mktemp("cnnviz-cache")
    os.environ["CNNVIZ_CACHE_DIR"] = str(root)
    yield root


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(root))
    return root


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    """3 classes × 4 real sample images, ImageFolder layout."""
    root = tmp_path_factory.mktemp("tiny") / "tiny"
    for cls in ("birds", "fruit", "money"):
        (root / cls).mkdir(parents=True)
        for src in sorted((SAMPLES / "stamps" / cls).iterdir())[:4]:
            shutil.copy(src, root / cls / src.name)
    return root


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> dict[str, Path]:
    """scikit-image's chelsea (a cat) and coffee (an espresso) as JPEG files."""
    import skimage.data

    d = tmp_path_factory.mktemp("photos")
    out = {}
    for name in ("chelsea", "coffee"):
        p = d / f"{name}.jpg"
        Image.fromarray(getattr(skimage.data, name)()).save(p, quality=95)
        out[name] = p
    return out


def write_image(path: Path, mode: str = "RGB", size=(32, 24), color=(200, 30, 30), **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new(mode, size, color)
    img.save(path, **save)
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)
