"""Region queries: a box in the original image's pixels → the model input of that region.

A box is ``x, y, w, h`` in pixels of the original (upright) image, as a user
sees it. Large images are decoded at reduced size (JPEG draft mode,
``MAX_SIDE``), so the box is scaled to the decoded image before cropping. The
crop is then prepared exactly like every dataset image (``fit_square``: the
central square, resized to the model's input).

A box smaller than ``MIN_CROP_PX`` on either side is refused: every model in
the registry has a total stride of 32, so each cell of its last feature map
summarises a 32 × 32 px patch of the input at native resolution; a smaller box
holds less than one such cell of real pixels and, resized up to 224 px, is
mostly interpolation blur.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .data.images import fit_square, load_image
from .errors import CnnvizError

MIN_CROP_PX = 32
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that rotate by 90°: width and height swap


class RegionError(CnnvizError):
    """A region box that cannot be searched (malformed, outside the image, too small)."""


@dataclass(frozen=True)
class Crop:
    """A box in original-image pixels."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> Crop:
        """``"X,Y,W,H"`` (integers) → a Crop; anything else is a :class:`RegionError`."""
        parts = [p.strip() for p in str(text).split(",")]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4:
            raise RegionError(f"--crop must be four integers X,Y,W,H (pixels of the original image), got {text!r}")
        return cls(*values)

    @classmethod
    def of(cls, box: Crop | tuple | dict | str | None) -> Crop | None:
        """A Crop from a Crop, an (x, y, w, h) tuple, a ``{left, top, width, height}`` dict or text."""
        if box is None or isinstance(box, Crop):
            return box
        if isinstance(box, str):
            return cls.parse(box)
        if isinstance(box, dict):
            return cls(int(box["left"]), int(box["top"]), int(box["width"]), int(box["height"]))
        x, y, w, h = (int(v) for v in box)
        return cls(x, y, w, h)

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.w, self.h

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.w},{self.h}"


def original_size(source: str | Path | bytes) -> tuple[int, int]:
    """(width, height) of the upright original image, read from its header (no decoding)."""
    fp = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
    with fp, Image.open(fp) as img:
        w, h = img.size
        orientation = img.getexif().get(0x0112, 1)
    return (h, w) if orientation in _SWAPPING_ORIENTATIONS else (w, h)


def check_crop(crop: Crop, size: tuple[int, int], label: str = "image") -> None:
    """Refuse a box that is empty, leaves the image, or is under ``MIN_CROP_PX`` on a side (with the reason)."""
    w, h = size
    if crop.w <= 0 or crop.h <= 0 or crop.x < 0 or crop.y < 0:
        raise RegionError(f"crop {crop}: x and y must be ≥ 0 and the width and height positive")
    if crop.x + crop.w > w or crop.y + crop.h > h:
        raise RegionError(f"crop {crop} extends past the {w}×{h} px {label}; the box must lie inside it")
    if min(crop.w, crop.h) < MIN_CROP_PX:
        raise RegionError(
            f"crop {crop} is {crop.w}×{crop.h} px: refused, the minimum is {MIN_CROP_PX} px on each side "
            f"(one cell of the models' last feature map covers {MIN_CROP_PX}×{MIN_CROP_PX} input pixels; a smaller "
            "region resized to the model input is mostly interpolation). Draw a larger box.")


def crop_image(source: str | Path | bytes, crop: Crop, name: str | None = None) -> Image.Image:
    """The region of the upright image, after checking the box against the original size."""
    img = load_image(source, name)  # refuses broken files with a clear message first
    orig = original_size(source)
    check_crop(crop, orig, name or ("uploaded image" if isinstance(source, bytes) else Path(source).name))
    sx, sy = img.width / orig[0], img.height / orig[1]  # < 1 when decoded at reduced size
    box = (round(crop.x * sx), round(crop.y * sy), round((crop.x + crop.w) * sx), round((crop.y + crop.h) * sy))
    return img.crop(box)


def crop_for_model(source: str | Path | bytes, crop: Crop, size: int, name: str | None = None) -> np.ndarray:
    """The region prepared as one model input: float32 (size, size, 3), like every dataset image."""
    return fit_square(crop_image(source, crop, name), size)


def draw_box(source: str | Path | bytes, crop: Crop, width: int = 320, color: str = "#ff2b2b") -> bytes:
    """A PNG of the image (at most ``width`` px wide) with the box drawn on it, for showing the query."""
    from PIL import ImageDraw

    img = load_image(source)
    orig = original_size(source)
    scale = min(1.0, width / img.width)
    shown = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    sx, sy = shown.width / orig[0], shown.height / orig[1]
    ImageDraw.Draw(shown).rectangle(
        (crop.x * sx, crop.y * sy, (crop.x + crop.w) * sx - 1, (crop.y + crop.h) * sy - 1), outline=color,
        width=max(2, round(3 * scale)))
    buf = io.BytesIO()
    shown.save(buf, format="PNG")
    return buf.getvalue()
