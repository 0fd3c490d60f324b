"""Streamlit glue for the paged gallery (Home, Compare, the Search picker): filters, page controls, one sheet.

The page is one server-drawn JPEG in a clickable image (``sheet.py``); a click on
an image makes it the query through the component's callback, before the rerun,
so the results render in the same run. The sheet of a page is cached, so a
rerun re-sends one cached image, whatever the dataset's size.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import streamlit as st

from .. import gallery, thumbnails
from ..data import ImageDataset
from . import cached, sheet, state

ALL = "All classes"
VIEWS = {"thumbnails": ":material/grid_view:", "list": ":material/list:"}  # a sheet of thumbnails, or a table
LAYOUT = gallery.SheetLayout()


@st.cache_data(show_spinner=False, max_entries=64)
def _matching(dataset_ref: str, label: str | None, text: str) -> np.ndarray:
    ds = cached.dataset(dataset_ref)
    return gallery.matching(ds.ids, ds.labels, label, text)


@st.cache_data(show_spinner=False, max_entries=256)
def _sheet(dataset_ref: str, indices: tuple[int, ...], columns: int) -> bytes:
    ds = cached.dataset(dataset_ref)
    items = [ds.items[i] for i in indices]
    captions = [it.label or it.path.name for it in items]
    return gallery.draw_sheet([it.path for it in items], captions, gallery.SheetLayout(columns=columns))


def _set_page(key: str, number: int) -> None:
    st.session_state[key] = number


def _reset_page(key: str) -> None:
    st.session_state[key] = 1


def _random_page(key: str, n_pages: int) -> None:
    st.session_state[key] = gallery.random_page(n_pages, st.session_state.get(key, 1))


def _clicked_sheet(key: str, shown_key: str, columns: int) -> None:
    """on_click of the sheet: the image under the click, on the page it was made on, becomes the query."""
    image_id = gallery.clicked_id(st.session_state.get(shown_key, {}), sheet.clicked(key), gallery.SheetLayout(columns=columns))
    if image_id is not None:
        state.set_query(image_id)


def _clicked_row(key: str, ids: tuple[str, ...]) -> None:
    event = st.session_state.get(key)
    rows = event.selection.rows if event else []
    if rows:
        state.set_query(ids[rows[0]])


def page_controls(ds: ImageDataset, ref: str, key: str, per_page: int = gallery.PER_PAGE) -> gallery.Page:
    """Class filter, file-name filter, page number, previous/next/random: the page to show."""
    page_key, class_key = f"{key}.page", f"{key}.class"
    options = [ALL, *ds.classes] if ds.labelled else [ALL]
    if st.session_state.get(class_key, ALL) not in options:  # another dataset was chosen since
        st.session_state[class_key] = ALL
    # One horizontal container, not seven st.columns: each column is three more elements for the browser to draw.
    row = st.container(horizontal=True, vertical_alignment="bottom")
    label = row.selectbox("Class", options, key=class_key, on_change=_reset_page, args=(page_key,),
                          disabled=len(options) == 1, width="stretch")
    text = row.text_input("File name contains", key=f"{key}.name", on_change=_reset_page, args=(page_key,),
                          placeholder="e.g. 00042", width="stretch")
    found = _matching(ref, None if label == ALL else label, text)
    n_pages = gallery.page_count(len(found), per_page)
    current = min(max(1, int(st.session_state.get(page_key, 1))), n_pages)
    st.session_state[page_key] = current  # clamped before the widget exists (filters or the dataset changed)
    row.number_input(f"Page (of {n_pages:,})", min_value=1, max_value=n_pages, step=1, key=page_key, width=150)
    row.button(":material/chevron_left:", key=f"{key}.prev", help="Previous page", disabled=current <= 1,
               on_click=_set_page, args=(page_key, current - 1))
    row.button(":material/chevron_right:", key=f"{key}.next", help="Next page", disabled=current >= n_pages,
               on_click=_set_page, args=(page_key, current + 1))
    row.button("Random", key=f"{key}.random", icon=":material/shuffle:", help="A random page", disabled=n_pages <= 1,
               on_click=_random_page, args=(page_key, n_pages))
    row.segmented_control("View", list(VIEWS), format_func=VIEWS.get, key=f"{key}.view", default="thumbnails",
                          label_visibility="hidden", help="Thumbnails (click one) or a list with file names (select a row)")
    return gallery.page_of(found, current, per_page)


def image_gallery(ds: ImageDataset, ref: str, key: str, columns: int = gallery.COLUMNS,
                  per_page: int = gallery.PER_PAGE) -> None:
    """One page of the dataset with filters and paging; a click on an image makes it the query."""
    page = page_controls(ds, ref, key, per_page)
    if not page.indices:
        st.info("No image matches these filters.")
        return
    last = page.first + len(page.indices) - 1
    st.caption(f"Images {page.first:,}–{last:,} of {page.n_matching:,}"
               + (f" matching (dataset: {len(ds.items):,})" if page.n_matching != len(ds.items) else "")
               + ". Click an image to search with it.")
    ids = tuple(ds.items[i].id for i in page.indices)
    if st.session_state.get(f"{key}.view") == "list":
        _table(ds, page, ids, key)
        return
    # One key for every page: Streamlit drops a click on a widget that left the last run, so a key per page lost a
    # click made on a page while the next was being drawn. The click names its page; the session's last pages
    # are kept to read it on the page the user saw.
    sheet_key, shown_key = f"{key}.sheet", f"{key}.sheet_pages"
    token = gallery.remember_page(st.session_state.setdefault(shown_key, {}), ids)
    sheet.clickable_image(_sheet(ref, page.indices, columns), key=sheet_key, page=token,
                          alt=f"Images {page.first:,}–{last:,} of {page.n_matching:,}",
                          on_click=partial(_clicked_sheet, sheet_key, shown_key, columns))


def _table(ds: ImageDataset, page: gallery.Page, ids: tuple[str, ...], key: str) -> None:
    items = [ds.items[i] for i in page.indices]
    df = pd.DataFrame({"image": thumbnails.data_uris([it.path for it in items], 64), "id": list(ids),
                       "class": [it.label or "-" for it in items]})
    # A key per page: a row selection belongs to the rows it was made on. Unlike a sheet click it carries no page
    # token, so one made while the next page is being drawn is dropped rather than read on the wrong rows.
    table_key = f"{key}.table." + gallery.page_token(ids)
    st.dataframe(df, key=table_key, hide_index=True, width="stretch", height=min(38 + 56 * len(df), 640), row_height=56,
                 on_select=partial(_clicked_row, table_key, ids), selection_mode="single-row",
                 column_config={"image": st.column_config.ImageColumn("image", width="small")})
