"""Safe image loading: the one place cnnviz turns bytes into pixels.

Handles EXIF orientation, palette/alpha (flattened on white), CMYK, 16-bit and
float images, animated files (first frame) and a decompression-bomb limit.
Every failure is an :class:`ImageLoadError` that names the file and problem.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageLoadError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
MAX_PIXELS = 100_000_000  # declared size above this is refused as a decompression bomb
# JPEGs decode at 1/2–1/8 scale (draft mode), so a 20000×20000 photo costs ~2500² pixels of memory.
MAX_JPEG_PIXELS = 600_000_000
MAX_SIDE = 2048  # decoded images are downscaled to at most this side
# What turns a file into model input; part of every cached artifact's key (bump the version on any change
# to decoding, colour handling, MAX_SIDE or fit_square).
IMAGE_PREP = "fit_square-bicubic"
IMAGE_PREP_VERSION = 1


def max_file_bytes() -> int:
    """Largest image or archive accepted, from the UI or the CLI: 200 MB like ``server.maxUploadSize``
    in .streamlit/config.toml (``CNNVIZ_MAX_FILE_MB`` raises it for a server's own files)."""
    return int(float(os.environ.get("CNNVIZ_MAX_FILE_MB") or 200) * 1024**2)


def check_file_size(size: int, label: str) -> None:
    limit = max_file_bytes()
    if size > limit:
        raise ImageLoadError(f"{label}: {size / 1024**2:.0f} MB is over the {limit / 1024**2:g} MB file limit")


def is_image_name(path: str | Path) -> bool:
    p = Path(path)
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8))
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = np.nanmin(arr), np.nanmax(arr)
        img = Image.fromarray(((arr - lo) / (hi - lo or 1.0) * 255).astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, img).convert("RGB")
    return img.convert("RGB")


def load_image(source: str | Path | bytes, name: str | None = None) -> Image.Image:
    """Decode a file or bytes into an upright RGB PIL image (at most MAX_SIDE px)."""
    label = name or (str(source) if not isinstance(source, bytes) else "uploaded image")
    try:
        check_file_size(len(source) if isinstance(source, bytes) else os.stat(source).st_size, label)
        fp = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
    except OSError as exc:
        raise ImageLoadError(f"{label}: cannot open ({exc.strerror or exc})") from exc
    try:
        with fp, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_JPEG_PIXELS  # cnnviz applies the per-format limit below
            img = Image.open(fp)
            w, h = img.size
            limit = MAX_JPEG_PIXELS if img.format == "JPEG" else MAX_PIXELS
            if w * h > limit:
                raise ImageLoadError(f"{label}: {w}×{h} pixels is over the {limit:,}-pixel limit (possible decompression bomb)")
            if w < 1 or h < 1:
                raise ImageLoadError(f"{label}: empty image")
            if img.format == "JPEG":
                img.draft("RGB", (MAX_SIDE, MAX_SIDE))  # decode large JPEGs at reduced size
            img.seek(0)  # animated files: first frame
            img.load()
            img = ImageOps.exif_transpose(img)
            img = _to_rgb(img)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"{label}: not an image file cnnviz can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"{label}: refused as a decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageLoadError(f"{label}: broken or truncated image ({exc})") from None
    if max(img.size) > MAX_SIDE:
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
    return img


def fit_square(img: Image.Image, size: int) -> np.ndarray:
    """Center-crop to square and resize: float32 (size, size, 3) in [0, 255]."""
    fitted = ImageOps.fit(img, (size, size), Image.BICUBIC)
    return np.asarray(fitted, dtype=np.float32)


def load_for_model(source: str | Path | bytes, size: int, name: str | None = None) -> np.ndarray:
    """Load an image and prepare it as one model input."""
    return fit_square(load_image(source, name), size)


def load_thumbnail(source: str | Path | bytes, size: int = 128) -> Image.Image:
    img = load_image(source)
    img.thumbnail((size, size), Image.LANCZOS)
    return img


# Every image file type the loader reads, for upload widgets (st.file_uploader(type=...)).
UPLOAD_TYPES = tuple(sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS))


def encode_image(image: np.ndarray | Image.Image, fmt: str = "PNG", quality: int = 85) -> bytes:
    """The one way cnnviz encodes pixels for display or download: an RGB(A) array (values clipped to
    0–255) or a PIL image as PNG or JPEG bytes (``quality`` for JPEG)."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    if fmt.upper() in ("JPEG", "JPG"):
        image.convert("RGB").save(buf, format="JPEG", quality=quality)
    else:
        image.save(buf, format="PNG")
    return buf.getvalue()
