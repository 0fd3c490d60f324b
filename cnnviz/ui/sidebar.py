"""The shared sidebar: dataset (samples, a folder under the allowed roots, an uploaded zip) and model.

Server folders come only from a picker of the folders under ``CNNVIZ_DATA_ROOTS`` and every one is
opened through :func:`resolve_in_roots`; the selected dataset is checked again on every run, so a
reference from anywhere else (a URL, a stale session) is refused too.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import streamlit as st

from ..data import DEFAULT_DATASET, open_dataset
from ..data.registry import DATASETS
from ..data.roots import HOW_TO_ADD_ROOTS, ROOTS_ENV, allowed_roots, folders_under_roots, resolve_in_roots
from ..data.uploads import SessionUploads, expire_uploads, is_upload, store_upload, touch_upload
from ..errors import CnnvizError
from ..models import MODELS, get_model_spec, weights_status
from . import state

UPLOADS = "cnnviz.session_uploads"  # SessionUploads of this session (count and bytes against the limits)
ERROR = "cnnviz.dataset_error"
ADD_DATASET = "cnnviz.add_dataset"  # the sidebar expander (open or not)
EXPIRE_EVERY_S = 600.0
_last_expiry = [0.0]


def semantic_models() -> list[str]:
    """Models with ImageNet weights on this machine (search needs trained features), then adapted models
    (``python -m cnnviz adapt`` or the Adapt page) of those."""
    from ..adapt import saved_entries

    available = [n for n, spec in MODELS.items() if weights_status(spec) == "available"]
    adapted = [m["name"] for m in saved_entries() if m["model"] in available]
    return available + list(dict.fromkeys(adapted))


@st.cache_data(ttl=60, show_spinner=False)
def _folders(roots_env: str) -> list[str]:
    """The folders a visitor may pick (re-listed at most once a minute; keyed by the roots setting)."""
    return [str(p) for p in folders_under_roots()]


def _add_dataset(label: str, ref: str) -> None:
    st.session_state[state.CUSTOM_DATASETS][label] = ref
    st.session_state[state.DATASET] = ref
    state.set_query(None)


def _open_folder() -> None:
    open_folder(st.session_state.get("cnnviz.folder_pick"))


def open_folder(picked: str | None) -> None:
    """Open a server folder as this session's dataset, only through :func:`resolve_in_roots`."""
    if not picked:
        return
    try:
        real = resolve_in_roots(picked)  # the only way a visitor's folder reaches open_dataset
        ds = open_dataset(real)
    except CnnvizError as exc:
        st.session_state[ERROR] = str(exc)
        return
    st.session_state.pop(ERROR, None)
    _add_dataset(f"{ds.name} (folder)", str(real))


def _open_zip() -> None:
    upload = st.session_state.get("cnnviz.zip_upload")
    if upload is None:
        return
    session = st.session_state.setdefault(UPLOADS, SessionUploads())
    try:
        path = store_upload(upload.getvalue(), upload.name, kind="uploads", session=session)
        ds = open_dataset(path)
    except CnnvizError as exc:
        st.session_state[ERROR] = str(exc)
        return
    st.session_state.pop(ERROR, None)
    _add_dataset(f"{upload.name} ({len(ds.items)} images)", str(path))


def _refusal(ref: str, samples: list[str]) -> str | None:
    """Why this session's dataset may not be opened here (None when it may): samples, this server's
    uploads (still present) and folders inside the allowed roots only."""
    if ref in samples or ref in DATASETS:
        return None
    if is_upload(ref):
        if Path(ref).exists():
            touch_upload(ref)  # in use: not idle
            return None
        return f"{Path(ref).name}: this upload expired after its idle time and was removed; upload it again"
    try:
        resolve_in_roots(ref)
    except CnnvizError as exc:
        return str(exc)
    return None


def _guard_dataset(samples: list[str]) -> None:
    """Refuse a selected dataset this server does not allow: back to the default, nothing opened."""
    ref = st.session_state[state.DATASET]
    why = _refusal(str(ref), samples)
    if why is None:
        return
    custom = st.session_state[state.CUSTOM_DATASETS]
    for label in [label for label, r in custom.items() if r == ref]:
        del custom[label]
    st.session_state[state.DATASET] = DEFAULT_DATASET if DEFAULT_DATASET in samples else samples[0]
    state.set_query(None)
    st.session_state[ERROR] = why


def _expire_uploads_now_and_then() -> None:
    if time.time() - _last_expiry[0] > EXPIRE_EVERY_S:
        _last_expiry[0] = time.time()
        expire_uploads()


def dataset_and_model(samples: list[str]) -> None:
    _expire_uploads_now_and_then()
    _guard_dataset(samples)
    custom = st.session_state[state.CUSTOM_DATASETS]
    labels = {name: f"{DATASETS[name].title} ({name})" for name in samples} | {ref: label for label, ref in custom.items()}
    with st.sidebar:
        st.selectbox("Dataset", list(labels), format_func=labels.get, key=state.DATASET, on_change=state.set_query, args=(None,))
        # Lazy: its widgets (a file uploader among them) are sent and drawn only once opened, on every page's
        # first render otherwise (Search page 3.00 -> 2.77 s, A/B on 10k images, docs/scale.md).
        add = st.expander("Add a dataset", key=ADD_DATASET, on_change="rerun")
        if add.open:
            with add:
                if allowed_roots():
                    st.selectbox("Folder on the server", _folders(os.environ.get(ROOTS_ENV, "")), index=None,
                                 key="cnnviz.folder_pick", placeholder="Pick a folder…",
                                 help="Folders under this server's allowed data roots. One sub-folder per class "
                                      "(ImageFolder); unlabelled folders allow search only.")
                    st.button("Open folder", on_click=_open_folder)
                else:
                    st.info(HOW_TO_ADD_ROOTS, icon=":material/folder_off:")
                st.file_uploader("…or a .zip of one", type=["zip"], key="cnnviz.zip_upload", on_change=_open_zip)
        if err := st.session_state.get(ERROR):
            st.error(err)
        models = semantic_models()
        if st.session_state[state.MODEL] not in models:
            st.session_state[state.MODEL] = models[0]
        st.selectbox("Model", models, key=state.MODEL,
                     help="Models with ImageNet weights on this machine. See `python -m cnnviz models` for the rest.")
        spec = get_model_spec(st.session_state[state.MODEL])  # registry or adapted model
        st.caption(f"{spec.family}, {spec.input_size}px · weights: {spec.weights_source}")
