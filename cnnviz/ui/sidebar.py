"""The shared sidebar: dataset (samples, a server folder, an uploaded zip) and model."""

from __future__ import annotations

import streamlit as st

from ..data import open_images
from ..data.registry import DATASETS
from ..data.uploads import store_upload
from ..errors import CnnvizError
from ..models import MODELS, weights_status
from . import state


def semantic_models() -> list[str]:
    """Models with ImageNet weights on this machine (search needs trained features)."""
    return [n for n, spec in MODELS.items() if weights_status(spec) == "available"]


def _add_dataset(label: str, ref: str) -> None:
    st.session_state[state.CUSTOM_DATASETS][label] = ref
    st.session_state[state.DATASET] = ref
    state.set_query(None)


def _open_folder() -> None:
    path = st.session_state.get("cnnviz.folder_path", "").strip()
    try:
        ds = open_images(path)
    except CnnvizError as exc:
        st.session_state["cnnviz.dataset_error"] = str(exc)
        return
    st.session_state.pop("cnnviz.dataset_error", None)
    _add_dataset(f"{ds.name} (folder)", path)


def _open_zip() -> None:
    upload = st.session_state.get("cnnviz.zip_upload")
    if upload is None:
        return
    try:
        path = store_upload(upload.getvalue(), upload.name, kind="uploads")
        ds = open_images(path)
    except CnnvizError as exc:
        st.session_state["cnnviz.dataset_error"] = str(exc)
        return
    st.session_state.pop("cnnviz.dataset_error", None)
    _add_dataset(f"{upload.name} ({len(ds.items)} images)", str(path))


def dataset_and_model(samples: list[str]) -> None:
    custom = st.session_state[state.CUSTOM_DATASETS]
    labels = {name: f"{DATASETS[name].title} ({name})" for name in samples} | {ref: label for label, ref in custom.items()}
    with st.sidebar:
        st.selectbox("Dataset", list(labels), format_func=labels.get, key=state.DATASET, on_change=state.set_query, args=(None,))
        with st.expander("Add a dataset"):
            st.text_input("Folder on the server", key="cnnviz.folder_path",
                          help="One sub-folder per class (ImageFolder); unlabelled folders allow search only.")
            st.button("Open folder", on_click=_open_folder)
            st.file_uploader("…or a .zip of one", type=["zip"], key="cnnviz.zip_upload", on_change=_open_zip)
            if err := st.session_state.get("cnnviz.dataset_error"):
                st.error(err)
        models = semantic_models()
        if st.session_state[state.MODEL] not in models:
            st.session_state[state.MODEL] = models[0]
        st.selectbox("Model", models, key=state.MODEL,
                     help="Models with ImageNet weights on this machine. See `python -m cnnviz models` for the rest.")
        spec = MODELS[st.session_state[state.MODEL]]
        st.caption(f"{spec.family}, {spec.input_size}px · weights: {spec.weights_source}")
