"""A clickable image drawn in the page itself: the gallery's contact sheet.

An ``st.components.v2`` component (Streamlit ≥ 1.52): its few lines of JavaScript
run in the app's own document, so a sheet costs one ``<img>`` element. The
``streamlit-image-coordinates`` component it replaces loads a React bundle into
an iframe per sheet: 0.1–0.8 s of a Home or Search page, by page and hour (A/B
in docs/scale.md). A click reports where it landed on the image as shown, and
the ``page`` token of the image it landed on: the user may click the previous
page while the next one is on its way, and the click belongs to what they saw.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from ..thumbnails import jpeg_data_uri

_JS = """
export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  let img = parentElement.querySelector("img");
  if (!img) {
    img = document.createElement("img");
    img.setAttribute("data-testid", "cnnvizSheet");
    img.style.cssText = "display:block;width:100%;height:auto;cursor:pointer";
    img.addEventListener("click", (e) => {
      const box = img.getBoundingClientRect();
      img.cnnvizSend("click", { x: e.clientX - box.left, y: e.clientY - box.top, width: box.width, height: box.height,
                                page: img.cnnvizPage });
    });
    parentElement.appendChild(img);
  }
  img.cnnvizSend = setTriggerValue;  // the latest mount's sender
  img.alt = data.alt;
  if (img.getAttribute("src") !== data.src) img.src = data.src;
  img.cnnvizPage = data.page;  // set with the src: a click names the page it was made on
}
"""

_component = st.components.v2.component("cnnviz.sheet", js=_JS, isolate_styles=False)  # in the page: tests find the img


def clickable_image(jpeg: bytes, *, key: str, page: str, alt: str, on_click: Callable[[], None]) -> None:
    """Show ``jpeg`` at the container's width; on a click, ``on_click`` runs before the rerun and
    ``clicked(key)`` holds the click. Keep ``key`` the same from page to page (a key that leaves the script
    run loses a click made just before), and name the page shown with ``page``."""
    _component(key=key, data={"src": jpeg_data_uri(jpeg), "alt": alt, "page": page}, on_click_change=on_click)


def clicked(key: str) -> dict | None:
    """The last click on the image mounted under ``key``: ``x``, ``y``, ``width``, ``height`` (CSS pixels of the
    image as shown) and the ``page`` it was shown for; ``None`` when there is none."""
    state = st.session_state.get(key)
    click = state.get("click") if state else None
    return click if isinstance(click, dict) else None
