"""Thumbnails on demand: a disk store keyed by image content, shared by every session and process.

A thumbnail is made the first time an image is shown at a size and kept in the
cache as ``<sha256 of the file>-<size>.jpg`` (atomic write), so a renamed or
copied image reuses it and an edited one gets a new one. Only what a page
shows is ever encoded; nothing is made for a whole dataset up front.
"""

from __future__ import annotations

import base64
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from . import cache

THUMB_VERSION = 2  # bump when the encoding below changes (2: small images enlarged)
JPEG_QUALITY = 85
KIND = "thumbnails"  # a derived cache kind: the quota may evict it

_DIGESTS: dict[tuple[str, int, int], str] = {}
_URIS: OrderedDict[tuple[str, int], str] = OrderedDict()
_URI_MEMO_MAX = 20_000  # ~3 KB each: at most ~60 MB per server process
_LOCK = threading.Lock()


def content_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's content, memoised per (path, size, mtime) so a page view costs a stat per image."""
    p = Path(path)
    st = p.stat()
    memo = (str(p), st.st_size, st.st_mtime_ns)
    digest = _DIGESTS.get(memo)
    if digest is None:
        digest = _DIGESTS[memo] = cache.file_digest(p)
    return digest


def thumbnail_path(path: str | os.PathLike, size: int = 128) -> Path:
    """The cached JPEG thumbnail (longest side ``size``, smaller images enlarged) of an image file; made on first request."""
    from .data.images import load_thumbnail

    key = f"{content_digest(path)}-{size}-v{THUMB_VERSION}"

    def produce(tmp: Path) -> None:
        img = load_thumbnail(path, size).convert("RGB")
        if max(img.size) < size:  # small images (28 px Fashion-MNIST) are enlarged to be seen
            scale = size / max(img.size)
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)
        img.save(tmp, format="JPEG", quality=JPEG_QUALITY)

    return cache.cached_file(KIND, key, ".jpg", produce)


def thumbnail_bytes(path: str | os.PathLike, size: int = 128) -> bytes:
    """JPEG bytes of an image's thumbnail (from the store)."""
    return thumbnail_path(path, size).read_bytes()


def jpeg_data_uri(jpeg: bytes) -> str:
    """A ``data:`` URI of JPEG bytes, for an ``<img>`` or an ``ImageColumn``."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def _memoised_uri(memo: tuple[str, int]) -> str | None:
    with _LOCK:
        hit = _URIS.get(memo)
        if hit is not None:
            _URIS.move_to_end(memo)
        return hit


def _encoded_uri(path: str, memo: tuple[str, int]) -> str:
    """Encode a thumbnail's data URI and remember it under ``memo`` = (content digest, size)."""
    uri = jpeg_data_uri(thumbnail_bytes(path, memo[1]))
    with _LOCK:
        _URIS[memo] = uri
        while len(_URIS) > _URI_MEMO_MAX:
            _URIS.popitem(last=False)
    return uri


def data_uris(paths: Sequence[str | os.PathLike], size: int = 64, workers: int = 4) -> list[str]:
    """Data URIs of these images' thumbnails, in order (for chart tooltips and tables).

    Only these images are read; misses are encoded on a few threads (PIL releases the GIL).
    """
    names = [str(p) for p in paths]
    memos = [(content_digest(n), size) for n in names]
    uris = [_memoised_uri(m) for m in memos]  # a thread per image would cost more than a memo hit
    missing = [i for i, u in enumerate(uris) if u is None]
    if len(missing) < 32:
        found = [_encoded_uri(names[i], memos[i]) for i in missing]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            found = list(pool.map(lambda i: _encoded_uri(names[i], memos[i]), missing))
    for i, uri in zip(missing, found):
        uris[i] = uri
    return uris
