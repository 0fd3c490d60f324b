"""Uploaded files: size-checked and stored content-addressed, never trusted by name."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .. import cache
from ..errors import DatasetError

MAX_UPLOAD_BYTES = 200 * 1024**2  # matches server.maxUploadSize in .streamlit/config.toml


def store_upload(data: bytes, filename: str, kind: str = "uploads") -> Path:
    """Write uploaded bytes under the cache as ``<sha256><suffix>`` (atomically); returns the path."""
    if not data:
        raise DatasetError(f"{filename}: the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise DatasetError(f"{filename}: {len(data) / 1e6:.0f} MB is over the {MAX_UPLOAD_BYTES // 1024**2} MB upload limit")
    suffix = Path(filename).suffix.lower()[:8]
    target = cache.entry_dir(kind) / f"{hashlib.sha256(data).hexdigest()}{suffix}"
    if not target.exists():
        with cache.atomic_path(target) as tmp:
            tmp.write_bytes(data)
    return target
