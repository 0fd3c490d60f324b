"""Search results as one HTML grid: a thumbnail and a caption per hit, drawn by the browser in one element.

One ``st.html`` element instead of an ``st.image`` plus an ``st.markdown`` per hit: a rerun sends every element
again and the frontend re-renders each, and each ``st.image`` is a separate HTTP request for a media file. On
Home at 10,000 images this cut a click's CPU (server and browser together) by about a fifth (docs/scale.md).
The marks are SVG images (Material icon paths, Apache-2.0), so they need no
emoji or icon font on the viewer's machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

_PATHS = {  # Material icons "check_circle", "cancel" and "flag" (24 × 24 viewBox)
    "same": "M12 2C6.48 2 2 6.48 2 12s4.48 10 10 10 10-4.48 10-10S17.52 2 12 2zm-2 15-5-5 1.41-1.41L10 14.17"
            "l7.59-7.59L19 8l-9 9z",
    "other": "M12 2C6.47 2 2 6.47 2 12s4.47 10 10 10 10-4.47 10-10S17.53 2 12 2zm5 13.59L15.59 17 12 13.41 8.41 17 7 15.59"
             " 10.59 12 7 8.41 8.41 7 12 10.59 15.59 7 17 8.41 13.41 12 17 15.59z",
    "flag": "M14.4 6 14 4H5v17h2v-7h5.6l.4 2h7V6z",
}
_MARKS = {"same": ("#21c354", "same class as the query"), "other": ("#ff4b4b", "another class than the query"),
          "flag": ("#ffa421", "flagged on the Data quality page")}


@dataclass(frozen=True)
class Card:
    """One result as shown: its image (a URL or ``data:`` URI), rank, id, class and similarity."""

    src: str
    rank: int
    image_id: str
    label: str | None
    similarity: float
    flag: str | None = None  # a short note, e.g. a suspected label error


def mark_icon(kind: str) -> str:
    """A 1em icon (``same``, ``other`` or ``flag``) named by its ``alt``. An SVG image, not inline ``<svg>``:
    ``st.html`` sanitises with DOMPurify's HTML profile, which removes inline SVG."""
    colour, name = _MARKS[kind]
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path fill="{colour}" d="{_PATHS[kind]}"/></svg>'
    return (f'<img class="cnnviz-mark" src="data:image/svg+xml,{quote(svg)}" alt="{name}" title="{name}" '
            f'style="display:inline;width:1.1em;height:1.1em;vertical-align:-0.2em">')


def results_html(cards: Sequence[Card], query_label: str | None, columns: int = 5) -> str:
    """The grid of ``cards``, ``columns`` wide; a check or a cross says whether a hit has the query's class
    (none when the query has no class). Every text is escaped: class names are folder names."""
    cells = []
    for card in cards:
        mark = "" if query_label is None else mark_icon("same" if card.label == query_label else "other") + " "
        flag = (f'<div style="font-size:0.85em;opacity:0.8">{mark_icon("flag")} {escape(card.flag)}</div>'
                if card.flag else "")
        caption = f"#{card.rank} {mark}{escape(card.label or '')} · sim {card.similarity:.3f}"
        cells.append(f'<figure class="cnnviz-hit" style="margin:0">'
                     f'<img src="{escape(card.src)}" alt="{escape(card.image_id)}" title="{escape(card.image_id)}" '
                     f'style="display:block;max-width:100%;height:auto;border-radius:0.25rem">'
                     f'<figcaption style="margin-top:0.25rem">{caption}</figcaption>{flag}</figure>')
    return (f'<div class="cnnviz-results" style="display:grid;grid-template-columns:repeat({columns},minmax(0,1fr));'
            f'gap:1rem 1rem">{"".join(cells)}</div>')
