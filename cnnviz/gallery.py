"""A gallery whose cost does not grow with the dataset: filter, page, and draw one contact sheet per page.

The dashboard shows one page of thumbnails (:data:`PER_PAGE`) as a single
server-drawn JPEG; a click at (x, y) on it is mapped back to the image with
:meth:`SheetLayout.cell_at`. Only the page's thumbnails are read (from
:mod:`cnnviz.thumbnails`), so a page costs the same at 200 or 1,000,000 images.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import thumbnails

PER_PAGE = 60
COLUMNS = 10


@dataclass(frozen=True)
class Page:
    """One page of a filtered gallery: dataset indices shown, its 1-based number, totals."""

    indices: tuple[int, ...]
    number: int
    n_pages: int
    n_matching: int
    first: int  # 1-based position of the first image among the matching ones (0 when none)


def matching(ids: Sequence[str], labels: Sequence[str | None], label: str | None = None, text: str = "") -> np.ndarray:
    """Dataset indices whose class is ``label`` (None: any) and whose id contains ``text`` (case-insensitive)."""
    text = text.strip().lower()
    keep = [i for i, (item_id, lab) in enumerate(zip(ids, labels))
            if (label is None or lab == label) and (not text or text in item_id.lower())]
    return np.asarray(keep, dtype=np.int64)


def page_count(n_matching: int, per_page: int = PER_PAGE) -> int:
    """Pages needed for ``n_matching`` images (at least 1, so an empty filter still has a page)."""
    return max(1, math.ceil(n_matching / per_page))


def page_of(indices: Sequence[int] | np.ndarray, number: int, per_page: int = PER_PAGE) -> Page:
    """Page ``number`` (1-based, clamped to the valid range) of the matching ``indices``."""
    n = len(indices)
    pages = page_count(n, per_page)
    number = min(max(1, int(number)), pages)
    start = (number - 1) * per_page
    shown = tuple(int(i) for i in indices[start:start + per_page])
    return Page(shown, number, pages, n, start + 1 if shown else 0)


def random_page(n_pages: int, current: int, rng: np.random.Generator | None = None) -> int:
    """A uniformly random page number other than ``current`` (``current`` when there is only one page)."""
    if n_pages <= 1:
        return 1
    rng = rng or np.random.default_rng()
    pick = int(rng.integers(1, n_pages))  # 1 .. n_pages-1, then skip over current
    return pick + 1 if pick >= current else pick


@dataclass(frozen=True)
class SheetLayout:
    """Geometry of a contact sheet: ``columns`` cells of ``cell`` px, a caption strip, gaps between cells."""

    columns: int = COLUMNS
    cell: int = 96
    caption: int = 16
    gap: int = 6

    @property
    def pitch_x(self) -> int:
        return self.cell + self.gap

    @property
    def pitch_y(self) -> int:
        return self.cell + self.caption + self.gap

    def size(self, n: int) -> tuple[int, int]:
        """Pixel size of a sheet of ``n`` cells (width is always a full row, so pages line up)."""
        rows = max(1, math.ceil(n / self.columns))
        return self.columns * self.pitch_x - self.gap, rows * self.pitch_y - self.gap

    def cell_at(self, x: float, y: float, shown_width: float, shown_height: float, n: int) -> int | None:
        """Which of the ``n`` cells a click at (x, y) on the sheet *as displayed* (scaled) hit; None for a gap."""
        width, height = self.size(n)
        if shown_width <= 0 or shown_height <= 0:
            return None
        sx, sy = x * width / shown_width, y * height / shown_height
        col, row = int(sx // self.pitch_x), int(sy // self.pitch_y)
        if not (0 <= col < self.columns and row >= 0):
            return None
        if sx - col * self.pitch_x >= self.cell or sy - row * self.pitch_y >= self.cell + self.caption:
            return None  # the gap between cells
        index = row * self.columns + col
        return index if index < n else None


def page_token(ids: Sequence[str]) -> str:
    """A short name for the page showing ``ids``: it travels with a click on that page's sheet."""
    return hashlib.sha1("\n".join(ids).encode()).hexdigest()[:12]


def remember_page(shown: MutableMapping[str, tuple[str, ...]], ids: Sequence[str], keep: int = 8) -> str:
    """Record the page showing ``ids`` in ``shown`` (the last ``keep`` pages of a session); its token."""
    token = page_token(ids)
    shown.pop(token, None)
    shown[token] = tuple(ids)  # newest last
    while len(shown) > keep:
        del shown[next(iter(shown))]
    return token


def clicked_id(shown: MutableMapping[str, tuple[str, ...]], click: dict | None, layout: SheetLayout) -> str | None:
    """The image under a click on a sheet, read on the page the click was made on (its ``page`` token), even when
    the session has drawn another page since; ``None`` for no click, a gap or a page no longer remembered."""
    ids = shown.get(str(click.get("page"))) if click else None
    if ids is None:
        return None
    try:
        cell = layout.cell_at(float(click["x"]), float(click["y"]), float(click["width"]), float(click["height"]), len(ids))
    except (KeyError, TypeError, ValueError):  # not a click this sheet sends
        return None
    return None if cell is None else ids[cell]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _fit(text: str, font, width: int, draw: ImageDraw.ImageDraw) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def draw_sheet(paths: Sequence[str | Path], captions: Sequence[str], layout: SheetLayout = SheetLayout(),
               quality: int = 82, workers: int = 4) -> bytes:
    """One JPEG with each image's thumbnail centred in its cell and its caption under it.

    Thumbnails come from the on-demand store (made on a few threads the first time).
    """
    with ThreadPoolExecutor(max_workers=workers) as pool:
        files = list(pool.map(lambda p: thumbnails.thumbnail_path(p, layout.cell), paths))
    sheet = Image.new("RGB", layout.size(len(files)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _font(layout.caption - 5)
    for n, (file, caption) in enumerate(zip(files, captions)):
        x0, y0 = (n % layout.columns) * layout.pitch_x, (n // layout.columns) * layout.pitch_y
        draw.rectangle((x0, y0, x0 + layout.cell - 1, y0 + layout.cell - 1), fill=(242, 243, 246))
        with Image.open(file) as thumb:
            thumb = thumb.convert("RGB")
            sheet.paste(thumb, (x0 + (layout.cell - thumb.width) // 2, y0 + (layout.cell - thumb.height) // 2))
        text = _fit(caption, font, layout.cell, draw)
        tx = x0 + (layout.cell - draw.textlength(text, font=font)) / 2
        draw.text((tx, y0 + layout.cell + 2), text, fill=(60, 64, 72), font=font)
    buf = io.BytesIO()
    sheet.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
