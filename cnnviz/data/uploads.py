"""Uploaded files: size-checked and stored content-addressed, never trusted by name; limited per session,
removed after an idle time.

Limits (environment, read on every call so a test or an operator can change them):

- ``CNNVIZ_UPLOAD_MAX_COUNT`` datasets one session may upload (default 5);
- ``CNNVIZ_UPLOAD_MAX_MB`` bytes one session may upload in all (default 1024 MB; one file is also
  capped by ``CNNVIZ_MAX_FILE_MB``);
- ``CNNVIZ_UPLOAD_TTL_HOURS`` idle hours after which an uploaded archive and its extraction are
  deleted (default 24; 0 keeps them forever). Every use of an upload (opening it, selecting it in the
  sidebar) records a use; expiry deletes only through :func:`cnnviz.cache.safe_remove`.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import cache
from ..errors import DatasetError
from .images import max_file_bytes

MAX_COUNT_ENV, MAX_MB_ENV, TTL_ENV = "CNNVIZ_UPLOAD_MAX_COUNT", "CNNVIZ_UPLOAD_MAX_MB", "CNNVIZ_UPLOAD_TTL_HOURS"
DEFAULT_MAX_COUNT, DEFAULT_MAX_MB, DEFAULT_TTL_HOURS = 5, 1024, 24.0
UPLOAD_KINDS = ("uploads", "datasets")  # the archive, and the folder it was extracted to (same sha256 prefix)


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        raise DatasetError(f"{name}={raw!r} is not a number") from None


def max_count() -> int:
    return int(_env_number(MAX_COUNT_ENV, DEFAULT_MAX_COUNT))


def max_session_bytes() -> int:
    return int(_env_number(MAX_MB_ENV, DEFAULT_MAX_MB) * 1024**2)


def ttl_seconds() -> float | None:
    hours = _env_number(TTL_ENV, DEFAULT_TTL_HOURS)
    return hours * 3600 if hours > 0 else None


@dataclass
class SessionUploads:
    """What one dashboard session has uploaded: sha256 → bytes (the same file twice counts once)."""

    files: dict[str, int] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())

    def check(self, digest: str, size: int, filename: str) -> None:
        """Refuse an upload over this session's count or byte limit (a re-upload of a known file passes)."""
        if digest in self.files:
            return
        if len(self.files) >= max_count():
            raise DatasetError(f"{filename}: this session has already uploaded {len(self.files)} datasets, the "
                               f"limit on this server ({MAX_COUNT_ENV}); reuse one from the Dataset list")
        if self.total_bytes + size > max_session_bytes():
            raise DatasetError(f"{filename}: {size / 1024**2:.1f} MB more would exceed this session's upload limit of "
                               f"{max_session_bytes() / 1024**2:g} MB ({MAX_MB_ENV}); "
                               f"{self.total_bytes / 1024**2:.1f} MB used")


def store_upload(data: bytes, filename: str, kind: str = "uploads", session: SessionUploads | None = None) -> Path:
    """Write uploaded bytes under the cache as ``<sha256><suffix>`` (atomically); returns the path.

    With ``session`` the per-session limits apply and the upload is counted against them.
    """
    if not data:
        raise DatasetError(f"{filename}: the file is empty")
    if len(data) > max_file_bytes():
        raise DatasetError(f"{filename}: {len(data) / 1024**2:.0f} MB is over the {max_file_bytes() / 1024**2:g} MB upload limit")
    digest = hashlib.sha256(data).hexdigest()
    if session is not None:
        session.check(digest, len(data), filename)
    expire_uploads()
    suffix = Path(filename).suffix.lower()[:8]
    target = cache.entry_dir(kind) / f"{digest}{suffix}"
    if target.exists():
        touch_upload(target)
    else:
        with cache.atomic_path(target) as tmp:
            tmp.write_bytes(data)
    if session is not None:
        session.files[digest] = len(data)
    return target


def _upload_files(path: Path) -> list[Path]:
    """An uploaded archive and its extraction folder (``datasets/<sha256[:24]>``), those that exist."""
    extracted = cache.cache_root() / "datasets" / path.name.split(".", 1)[0][:24]
    return [p for p in (path, extracted) if p.exists()]


def is_upload(ref: str | Path) -> bool:
    """Whether a dataset reference is an archive stored by :func:`store_upload`."""
    p = Path(ref)
    return p.is_absolute() and p.parent == cache.cache_root() / "uploads"


def touch_upload(path: str | Path) -> None:
    """Record a use of an uploaded archive (and its extraction): it will not expire for another TTL."""
    cache.mark_used(*_upload_files(Path(path)))


def expire_uploads(now: float | None = None) -> list[str]:
    """Delete uploads (archive + extraction) idle for longer than the TTL; returns what was removed.

    Idle = time since the newest mtime of the archive and its extraction folder (uses touch them).
    An extraction without an archive (e.g. from a CLI ``--images x.zip``) expires the same way.
    """
    ttl = ttl_seconds()
    if ttl is None:
        return []
    now = time.time() if now is None else now
    removed = []
    found = cache.entries(UPLOAD_KINDS)
    archived = {e.key[:24] for e in found if e.kind == "uploads"}
    for entry in found:
        if entry.kind == "datasets" and entry.key in archived:
            continue  # judged together with its archive
        paths = list(entry.paths)
        if entry.kind == "uploads":
            paths = sorted({*paths, *(q for p in entry.paths for q in _upload_files(p))})
        paths = [p for p in paths if p.exists()]
        if not paths:
            continue
        last = max(p.stat().st_mtime for p in paths)
        if now - last > ttl and not cache.in_use(cache.Entry(entry.kind, entry.key, tuple(paths), entry.bytes, last), now):
            for p in paths:
                cache.safe_remove(p)
                removed.append(str(p))
    return removed
