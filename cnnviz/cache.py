"""Content-addressed artifact cache with atomic writes.

Keys are the sha256 of canonical JSON over everything that determines an
artifact (plus ``CACHE_SCHEMA`` and library versions), so a change of code
version or setting is a miss, never a stale hit. Files are written to a unique
temp file in the target directory and moved into place with ``os.replace``,
so a reader sees either nothing or a complete file. Entries that fail to load
or whose sidecar does not match are treated as misses and removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CACHE_SCHEMA = 1
_REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_root() -> Path:
    """Cache directory: ``$CNNVIZ_CACHE_DIR`` or ``cache/`` beside the package."""
    root = Path(os.environ.get("CNNVIZ_CACHE_DIR") or _REPO_ROOT / "cache")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"numpy": np.__version__}
    for pkg in ("keras", "tensorflow-cpu"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def make_key(kind: str, **fields: Any) -> str:
    """sha256 of canonical JSON over kind, fields, schema and library versions."""
    payload = {"kind": kind, "schema": CACHE_SCHEMA, "versions": _versions(), **fields}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's content, read in chunks (large weights and archives stay out of memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def entry_dir(kind: str) -> Path:
    d = cache_root() / kind
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a unique temp path beside ``final``; move it into place on success."""
    final.parent.mkdir(parents=True, exist_ok=True)
    # The temp name ends with the final name so suffix-sensitive writers (Keras) accept it.
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{final.name}", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json_atomic(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))


def save_arrays(kind: str, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Store arrays as ``<key>.npz`` plus a ``<key>.json`` sidecar (written last)."""
    d = entry_dir(kind)
    npz = d / f"{key}.npz"
    with atomic_path(npz) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    shapes = {k: list(v.shape) for k, v in arrays.items()}
    write_json_atomic(d / f"{key}.json", {**meta, "key": key, "shapes": shapes, "bytes": npz.stat().st_size})
    return npz


def _read_checked(kind: str, key: str, suffix: str, read: Callable[[Path, dict[str, Any]], Any]) -> Any:
    """``read(data_path, sidecar)`` for an entry whose sidecar names this key and the file's size; None on a
    miss. Anything wrong (mismatch, unreadable, ``read`` raising) discards the entry with a warning."""
    d = entry_dir(kind)
    data, side = d / f"{key}{suffix}", d / f"{key}.json"
    if not (data.exists() and side.exists()):
        return None
    try:
        meta = json.loads(side.read_text())
        if meta.get("key") != key or meta.get("bytes") != data.stat().st_size:
            raise ValueError("sidecar does not match the data file")
        return read(data, meta)
    except Exception as exc:  # any unreadable entry is a miss
        log.warning("discarding corrupt cache entry %s/%s: %s", kind, key[:12], exc)
        for p in (data, side):
            p.unlink(missing_ok=True)
        return None


def load_arrays(kind: str, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """Return (arrays, meta), or None on a miss or a corrupt entry (which is removed)."""

    def read(npz: Path, meta: dict[str, Any]):
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        if {k: list(v.shape) for k, v in arrays.items()} != meta.get("shapes"):
            raise ValueError("array shapes do not match the sidecar")
        return arrays, meta

    return _read_checked(kind, key, ".npz", read)


def has_arrays(kind: str, key: str) -> bool:
    """Whether an ``.npz`` entry is present and its size matches its sidecar (cheap; no data is read)."""
    d = entry_dir(kind)
    npz, side = d / f"{key}.npz", d / f"{key}.json"
    try:
        return json.loads(side.read_text()).get("bytes") == npz.stat().st_size
    except (OSError, ValueError):
        return False


@contextmanager
def writing_matrix(kind: str, key: str, shape: tuple[int, int], meta: dict[str, Any]) -> Iterator[np.ndarray]:
    """Yield a memory-mapped float32 ``.npy`` to fill; on success it is moved into place and its sidecar written.

    Large feature matrices are written piece by piece without holding them in RAM.
    """
    final = entry_dir(kind) / f"{key}.npy"
    with atomic_path(final) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        yield out
        out.flush()
        del out
    write_json_atomic(final.with_suffix(".json"), {**meta, "key": key, "shape": list(shape), "bytes": final.stat().st_size})


def load_matrix(kind: str, key: str) -> np.ndarray | None:
    """A float32 ``.npy`` entry memory-mapped read-only, or None on a miss or a mismatch (which is removed).

    The check is the sidecar's size and shape (a checksum would read gigabytes on every load);
    writes are atomic, so a size match means the file is the one the sidecar describes.
    """

    def read(npy: Path, meta: dict[str, Any]) -> np.ndarray:
        arr = np.load(npy, mmap_mode="r", allow_pickle=False)
        if list(arr.shape) != meta.get("shape") or arr.dtype != np.float32:
            raise ValueError("shape or dtype does not match the sidecar")
        return arr

    return _read_checked(kind, key, ".npy", read)


def cached_file(kind: str, key: str, suffix: str, produce: Callable[[Path], None]) -> Path:
    """Path of a cached file, calling ``produce(tmp_path)`` to make it on a miss."""
    final = entry_dir(kind) / f"{key}{suffix}"
    if final.exists() and final.stat().st_size > 0:
        return final
    with atomic_path(final) as tmp:
        produce(tmp)
    return final


def cache_info() -> dict[str, Any]:
    """Bytes and file counts per artifact kind."""
    root = cache_root()
    kinds = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        files = [f for f in d.rglob("*") if f.is_file()]
        kinds[d.name] = {"files": len(files), "bytes": sum(f.stat().st_size for f in files)}
    return {"root": str(root), "kinds": kinds}


def clear_cache(kind: str | None = None) -> None:
    """Remove one artifact kind, or everything except ``.gitkeep``."""
    root = cache_root()
    targets = [root / kind] if kind else [p for p in root.iterdir() if p.name != ".gitkeep"]
    for t in targets:
        if t.is_dir():
            shutil.rmtree(t)
        elif t.exists():
            t.unlink()
