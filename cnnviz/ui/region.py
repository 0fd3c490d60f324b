"""Region search on the pages: a toggle, then a box to drag on the query image (streamlit-cropper)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

from ..errors import CnnvizError
from ..region import MIN_CROP_PX, Crop, original_size


@st.cache_data(show_spinner=False, max_entries=64)
def _decoded(source: str | bytes):
    """The upright decoded query image and its original size (cached: the box is dragged many times)."""
    from ..data.images import load_image

    return load_image(source), original_size(source)


def region_box(source: str | Path | bytes, key: str, input_size: int) -> Crop | None:
    """The region of the query to search with, or None (whole image).

    Shows a toggle; when it is on, the query image with a box to drag and resize. The box comes back in
    pixels of the original image (the decoded image may be smaller: huge JPEGs decode at reduced size).
    """
    if not st.toggle("Search a region of the query", key=f"{key}.region_on",
                     help=f"Drag a box on the image: its features become the query. At least {MIN_CROP_PX} px a side."):
        return None
    from streamlit_cropper import st_cropper

    src = source if isinstance(source, bytes) else str(source)
    try:
        img, (orig_w, orig_h) = _decoded(src)
    except CnnvizError as exc:
        st.error(str(exc))
        return None
    if min(orig_w, orig_h) < MIN_CROP_PX:
        st.info(f"This image is {orig_w}×{orig_h} px: smaller than the {MIN_CROP_PX} px minimum region, so only the "
                "whole image can be searched.")
        return None
    ident = hashlib.sha1(src if isinstance(src, bytes) else src.encode()).hexdigest()[:12]  # a fresh box per image
    rect = st_cropper(img, realtime_update=True, box_color="#ff2b2b", return_type="box", key=f"{key}.box.{ident}")
    sx, sy = orig_w / img.width, orig_h / img.height
    crop = Crop(round(rect["left"] * sx), round(rect["top"] * sy), round(rect["width"] * sx), round(rect["height"] * sy))
    st.caption(f"Region x={crop.x}, y={crop.y}, {crop.w}×{crop.h} px of the {orig_w}×{orig_h} px image "
               f"(the model sees its central square at {input_size} px; at least {MIN_CROP_PX} px a side). "
               f"CLI: `--crop {crop}`")
    return crop


def search_with_region(search, crop: Crop | None):
    """``search(crop)``; a refused box (too small, outside the image) shows why and searches the whole image."""
    from ..region import RegionError

    if crop is None:
        return search(None)
    try:
        return search(crop)
    except RegionError as exc:
        st.error(f"{exc} Showing results for the whole image.")
        return search(None)
