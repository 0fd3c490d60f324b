"""Streamlit caching around the library: models as resources, arrays as data.

Pages call only these (and plain library functions), so nothing heavy is
recomputed on a rerun.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from .. import workflows
from ..data import ImageDataset, load_dataset
from ..features import extract_features
from ..models.build import LoadedModel


@st.cache_resource(show_spinner=False)
def model(name: str) -> LoadedModel:
    """A built model shared by every session (read-only)."""
    return workflows.get_model(name)


@st.cache_resource(show_spinner=False)
def dataset(name: str) -> ImageDataset:
    return load_dataset(name)


@st.cache_data(show_spinner=False, max_entries=32)
def features(model_name: str, dataset_name: str, layer: str, pooling: str = "avg") -> np.ndarray:
    """Pooled features of one layer (disk-cached; first call shows progress)."""
    loaded, ds = model(model_name), dataset(dataset_name)
    bar = st.progress(0.0, text=f"Extracting {model_name} features of {dataset_name}…")
    try:
        return extract_features(loaded, ds, [layer], pooling,
                                progress=lambda done, total: bar.progress(done / total, text=f"Extracting features: {done}/{total} images"))[layer]
    finally:
        bar.empty()


@st.cache_data(show_spinner=False, max_entries=256)
def thumbnail(path: str, size: int = 160) -> np.ndarray:
    from ..data.images import load_thumbnail

    return np.asarray(load_thumbnail(path, size))
