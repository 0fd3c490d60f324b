"""Uploaded files: size-checked and stored content-addressed, never trusted by name."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .. import cache
from ..errors import DatasetError
from .images import max_file_bytes


def store_upload(data: bytes, filename: str, kind: str = "uploads") -> Path:
    """Write uploaded bytes under the cache as ``<sha256><suffix>`` (atomically); returns the path."""
    if not data:
        raise DatasetError(f"{filename}: the file is empty")
    if len(data) > max_file_bytes():
        raise DatasetError(f"{filename}: {len(data) / 1024**2:.0f} MB is over the {max_file_bytes() / 1024**2:g} MB upload limit")
    suffix = Path(filename).suffix.lower()[:8]
    target = cache.entry_dir(kind) / f"{hashlib.sha256(data).hexdigest()}{suffix}"
    if not target.exists():
        with cache.atomic_path(target) as tmp:
            tmp.write_bytes(data)
    return target
