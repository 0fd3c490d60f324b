"""Turn heatmaps into pictures: colormapped overlays and a titled grid (PNG)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data.images import encode_image

COLORMAPS = ("jet", "inferno", "viridis", "turbo", "magma", "gray")


def colorize(heatmap: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """A [0, 1] heatmap as uint8 RGB through a matplotlib colormap."""
    from matplotlib import colormaps

    return (colormaps[cmap](np.clip(heatmap, 0, 1))[..., :3] * 255).astype(np.uint8)


def blend(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """The colormapped heatmap over the image with opacity ``alpha``; uint8 RGB."""
    mixed = (1 - alpha) * np.asarray(image, np.float32) + alpha * colorize(heatmap, cmap).astype(np.float32)
    return np.clip(mixed, 0, 255).astype(np.uint8)


def grid_png(cells: Sequence[Sequence[tuple[str, np.ndarray]]], tile: int = 224) -> bytes:
    """Rows of (caption, RGB image) as one PNG, each tile captioned underneath (lines split on '\\n')."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=12)
    rows, cols = len(cells), max((len(r) for r in cells), default=0)
    caption_h = 16 * max((c.count("\n") + 1 for r in cells for c, _ in r), default=1) + 6
    canvas = Image.new("RGB", (max(cols, 1) * (tile + 8) + 8, max(rows, 1) * (tile + caption_h + 8) + 8), "white")
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(cells):
        for c, (caption, img) in enumerate(row):
            x, y = 8 + c * (tile + 8), 8 + r * (tile + caption_h + 8)
            canvas.paste(Image.fromarray(np.asarray(img, np.uint8)).resize((tile, tile)), (x, y))
            draw.multiline_text((x, y + tile + 3), caption, fill="black", font=font, spacing=3)
    return encode_image(canvas)
