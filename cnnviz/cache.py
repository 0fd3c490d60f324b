"""Content-addressed artifact cache with atomic writes, guarded deletes and a size quota.

Keys are the sha256 of canonical JSON over everything that determines an
artifact (plus ``CACHE_SCHEMA`` and library versions), so a change of code
version or setting is a miss, never a stale hit. Files are written to a unique
temp file in the target directory and moved into place with ``os.replace``,
so a reader sees either nothing or a complete file. Entries that fail to load
or whose sidecar does not match are treated as misses and removed.

Every delete goes through :func:`safe_remove`, which refuses any path that is
not strictly inside :func:`cache_root` (``..``, absolute paths elsewhere,
symlinks that lead out; a link inside the cache is removed, never its target).
``CNNVIZ_CACHE_MAX_GB`` caps the cache: derived artifacts are evicted least
recently used first (use is recorded by touching the entry's files on every
read), never an entry that is in use (see :func:`in_use`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CnnvizError

log = logging.getLogger(__name__)

CACHE_SCHEMA = 1
_REPO_ROOT = Path(__file__).resolve().parent.parent

# Every top-level folder the code writes (grep entry_dir(" / save_arrays(" / load_matrix(").
KNOWN_KINDS = ("features", "feature-chunks", "attribution", "featureviz", "ann", "benchmarks", "weights",
               "datasets", "uploads", "curate", "adapted", "thumbnails", "overview")
# Recomputable from code + inputs: the only kinds the quota evicts. Converted weights are derived too but
# every loaded model holds them; adapted projections are named models someone trained; datasets and uploads
# are visitors' data and expire by idle time instead.
DERIVED_KINDS = ("features", "feature-chunks", "attribution", "featureviz", "ann", "benchmarks", "curate", "thumbnails",
                 "overview")
MAX_GB_ENV = "CNNVIZ_CACHE_MAX_GB"
GRACE_ENV = "CNNVIZ_CACHE_GRACE_S"
DEFAULT_GRACE_S = 600.0  # entries used this recently count as in use (another process may be reading them)


class CacheError(CnnvizError):
    """A cache operation refused (unknown kind, a path outside the cache)."""


class CacheFullError(CnnvizError):
    """The disk or the cache quota is full; nothing partial was kept."""


def cache_root() -> Path:
    """Cache directory (resolved): ``$CNNVIZ_CACHE_DIR`` or ``cache/`` beside the package."""
    root = Path(os.environ.get("CNNVIZ_CACHE_DIR") or _REPO_ROOT / "cache").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


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


def check_kind(kind: str) -> str:
    """``kind`` if it names a known artifact folder (optionally ``kind/<sub>``); else a :class:`CacheError`.

    Pure string checks, done before any filesystem call: ``..``, ``/`` and absolute paths never get further.
    """
    parts = str(kind).split("/")
    if parts[0] not in KNOWN_KINDS or len(parts) > 2 or any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts):
        raise CacheError(f"unknown cache kind {kind!r}; known kinds: {', '.join(KNOWN_KINDS)}")
    return kind


def entry_dir(kind: str) -> Path:
    d = cache_root() / check_kind(kind)
    d.mkdir(parents=True, exist_ok=True)
    return d


# --- guarded deletes ---------------------------------------------------------------------------------------

def _inside(path: Path, root: Path) -> bool:
    return path != root and path.is_relative_to(root)


def _tree_size(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path`` without following links."""
    if path.is_symlink() or path.is_file():
        return 1, path.lstat().st_size
    files = size = 0
    for dirpath, _, filenames in os.walk(path, followlinks=False):
        for fn in filenames:
            try:
                size += (Path(dirpath) / fn).lstat().st_size
                files += 1
            except OSError:
                pass
    return files, size


def _gone_is_fine(func: Callable, path: str, exc_info: tuple) -> None:
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]


def safe_remove(path: str | Path) -> int:
    """Delete a file, folder or link strictly inside the cache root; returns the bytes freed (0 if absent).

    Refused with a :class:`CacheError`, before anything is touched: the root itself, relative paths, anything
    whose normalised path (``..`` collapsed) is outside the root, and anything reached through a symlinked
    folder that leads out. A symlink inside the cache is unlinked; its target is never followed.
    """
    root = cache_root()
    text = str(path)
    if not os.path.isabs(text) or "\x00" in text:
        raise CacheError(f"refusing to delete {text!r}: not an absolute path inside the cache {root}")
    lexical = Path(os.path.normpath(text))
    if not _inside(lexical, root) or not (lexical.parent == root or _inside(lexical.parent.resolve(), root)):
        raise CacheError(f"refusing to delete {text}: outside the cache {root}")
    if not (lexical.is_symlink() or lexical.exists()):
        return 0
    files, size = _tree_size(lexical)
    try:
        if lexical.is_symlink() or not lexical.is_dir():
            os.unlink(lexical)
        else:
            shutil.rmtree(lexical, onerror=_gone_is_fine)  # never follows links inside the tree (they are unlinked)
    except FileNotFoundError:  # another process removed it first
        return 0
    log.info("cache: removed %s (%d files, %d bytes)", lexical, files, size)
    return size


def clear_cache(kind: str | None = None) -> list[dict[str, Any]]:
    """Remove one artifact kind, or everything except ``.gitkeep``; returns what was removed (path, files, bytes)."""
    root = cache_root()
    if kind is not None:
        targets = [root / check_kind(kind)]
    else:
        targets = sorted(p for p in root.iterdir() if p.name != ".gitkeep")
    removed = []
    for t in targets:
        if t.exists() or t.is_symlink():
            files, _ = _tree_size(t)
            removed.append({"path": str(t), "files": files, "bytes": safe_remove(t)})
    return removed


# --- use tracking and the quota ------------------------------------------------------------------------------

_IN_USE: dict[str, int] = {}  # "kind/key" -> holders in this process (memory-mapped matrices, writes)
_LOCK = threading.RLock()


def _use_id(kind: str, key: str) -> str:
    return f"{kind}/{key}"


def _hold(kind: str, key: str) -> None:
    with _LOCK:
        _IN_USE[_use_id(kind, key)] = _IN_USE.get(_use_id(kind, key), 0) + 1


def _release(kind: str, key: str) -> None:
    with _LOCK:
        n = _IN_USE.get(_use_id(kind, key), 0) - 1
        if n > 0:
            _IN_USE[_use_id(kind, key)] = n
        else:
            _IN_USE.pop(_use_id(kind, key), None)


@contextmanager
def holding(kind: str, key: str) -> Iterator[None]:
    """Mark an entry as in use for the duration (the quota never evicts it meanwhile)."""
    _hold(kind, key)
    try:
        yield
    finally:
        _release(kind, key)


def hold_while_alive(obj: object, kind: str, key: str) -> None:
    """Keep an entry in use as long as ``obj`` (e.g. its memory map, or any view of it) is alive."""
    _hold(kind, key)
    weakref.finalize(obj, _release, kind, key)


def grace_seconds() -> float:
    return float(os.environ.get(GRACE_ENV) or DEFAULT_GRACE_S)


def max_bytes() -> int | None:
    """The quota from ``CNNVIZ_CACHE_MAX_GB`` (decimal GB), or None for no limit."""
    raw = os.environ.get(MAX_GB_ENV, "").strip()
    if not raw:
        return None
    try:
        gb = float(raw)
    except ValueError:
        raise CacheError(f"{MAX_GB_ENV}={raw!r} is not a number of gigabytes") from None
    return int(gb * 1e9) if gb > 0 else None


def mark_used(*paths: Path) -> None:
    """Record a use (mtime = now) of these entry files: the quota's least-recently-used clock."""
    for p in paths:
        try:
            os.utime(p)
        except OSError:
            pass


@dataclass(frozen=True)
class Entry:
    """One cache entry: the files ``<key>.*`` of a kind folder, or one sub-folder of it."""

    kind: str
    key: str
    paths: tuple[Path, ...]
    bytes: int
    last_used: float  # newest mtime of its files (reads touch them)


def entries(kinds: tuple[str, ...] = KNOWN_KINDS) -> list[Entry]:
    """Every complete-or-not entry of these kinds (temp files of writes in progress left out)."""
    root = cache_root()
    out = []
    for kind in kinds:
        d = root / kind
        if not d.is_dir() or d.is_symlink():
            continue
        groups: dict[str, list[Path]] = {}
        for p in d.iterdir():
            if p.name.startswith("."):
                continue
            groups.setdefault(p.name if p.is_dir() else p.name.split(".", 1)[0], []).append(p)
        for key, paths in groups.items():
            size, newest = 0, 0.0
            for p in paths:
                if p.is_dir() and not p.is_symlink():
                    size += _tree_size(p)[1]
                    newest = max([newest, p.stat().st_mtime] + [f.stat().st_mtime for f in p.rglob("*") if f.is_file()])
                else:
                    st = p.lstat()
                    size, newest = size + st.st_size, max(newest, st.st_mtime)
            out.append(Entry(kind, key, tuple(sorted(paths)), size, newest))
    return out


def in_use(entry: Entry, now: float | None = None) -> bool:
    """In use = held by this process (a memory-mapped matrix, a write in progress) or used within the grace
    period (another process may be reading or finishing it)."""
    now = time.time() if now is None else now
    return _use_id(entry.kind, entry.key) in _IN_USE or now - entry.last_used < grace_seconds()


def usage_bytes(exclude: Path | None = None) -> int:
    """Bytes under the cache root (temp files included: they occupy the disk too)."""
    total = 0
    for dirpath, _, filenames in os.walk(cache_root(), followlinks=False):
        for fn in filenames:
            p = Path(dirpath) / fn
            if p == exclude:
                continue
            try:
                total += p.lstat().st_size
            except OSError:
                pass
    return total


def evict(needed: int = 0, exclude: Path | None = None) -> list[Entry]:
    """Evict least-recently-used derived entries not in use until ``needed`` more bytes fit the quota.

    Returns the evicted entries; raises :class:`CacheFullError` when the quota cannot be met.
    """
    limit = max_bytes()
    if limit is None:
        return []
    with _LOCK:
        used = usage_bytes(exclude)
        if used + needed <= limit:
            return []
        gone = []
        now = time.time()
        for e in sorted(entries(DERIVED_KINDS), key=lambda e: e.last_used):
            if used + needed <= limit:
                break
            if in_use(e, now):
                continue
            for p in e.paths:
                safe_remove(p)
            used -= e.bytes
            gone.append(e)
        if used + needed > limit:
            raise CacheFullError(
                f"the cache quota is full: {used / 1e9:.2f} GB used of {limit / 1e9:g} GB ({MAX_GB_ENV}) and "
                f"{needed / 1e9:.3f} GB more needed; the rest is in use or uploaded data. Nothing partial was kept: "
                f"raise {MAX_GB_ENV}, or free space with `python -m cnnviz cache clear --kind KIND`.")
        return gone


def _full_disk(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1))


@contextmanager
def atomic_path(final: Path, check_quota: bool = True) -> Iterator[Path]:
    """Yield a unique temp path beside ``final``; move it into place on success.

    Before the move the quota makes room for it (evicting LRU entries) or raises :class:`CacheFullError`;
    a full disk (ENOSPC) mid-write also raises it. Either way the temp file is removed: no partial entry.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    # The temp name ends with the final name so suffix-sensitive writers (Keras) accept it.
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{final.name}", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if check_quota:
            evict(tmp_path.stat().st_size, exclude=tmp_path)
        os.replace(tmp_path, final)
    except OSError as exc:
        if _full_disk(exc):
            raise CacheFullError(f"the disk is full while writing {final.name} into the cache ({exc.strerror}); "
                                 "nothing partial was kept: free disk space or set CNNVIZ_CACHE_MAX_GB") from None
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json_atomic(path: Path, data: Any, check_quota: bool = True) -> None:
    with atomic_path(path, check_quota) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))


def _commit_sidecar(data: Path, meta: dict[str, Any]) -> None:
    """Write the sidecar that marks ``data`` complete; if that fails, remove ``data`` (no half entry)."""
    try:
        write_json_atomic(data.with_suffix(".json"), meta, check_quota=False)
    except BaseException:
        safe_remove(data)
        raise


def save_arrays(kind: str, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Store arrays as ``<key>.npz`` plus a ``<key>.json`` sidecar (written last)."""
    d = entry_dir(kind)
    npz = d / f"{key}.npz"
    with holding(kind, key):
        with atomic_path(npz) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        shapes = {k: list(v.shape) for k, v in arrays.items()}
        _commit_sidecar(npz, {**meta, "key": key, "shapes": shapes, "bytes": npz.stat().st_size})
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
        out = read(data, meta)
    except Exception as exc:  # any unreadable entry is a miss
        log.warning("discarding corrupt cache entry %s/%s: %s", kind, key[:12], exc)
        for p in (data, side):
            safe_remove(p)
        return None
    mark_used(side)
    return out


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

    Large feature matrices are written piece by piece without holding them in RAM. The quota is checked
    for the full size before the first byte is written, so a long computation does not fail at its end.
    """
    final = entry_dir(kind) / f"{key}.npy"
    with holding(kind, key):
        evict(int(np.prod(shape)) * 4 + 128)
        with atomic_path(final) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
            yield out
            out.flush()
            del out
        _commit_sidecar(final, {**meta, "key": key, "shape": list(shape), "bytes": final.stat().st_size})


def load_matrix(kind: str, key: str) -> np.ndarray | None:
    """A float32 ``.npy`` entry memory-mapped read-only, or None on a miss or a mismatch (which is removed).

    The check is the sidecar's size and shape (a checksum would read gigabytes on every load);
    writes are atomic, so a size match means the file is the one the sidecar describes. The entry
    counts as in use (never evicted) while the returned array or any view of it is alive.
    """

    def read(npy: Path, meta: dict[str, Any]) -> np.ndarray:
        arr = np.load(npy, mmap_mode="r", allow_pickle=False)
        if list(arr.shape) != meta.get("shape") or arr.dtype != np.float32:
            raise ValueError("shape or dtype does not match the sidecar")
        return arr

    arr = _read_checked(kind, key, ".npy", read)
    if arr is not None:
        hold_while_alive(arr, kind, key)
    return arr


def cached_file(kind: str, key: str, suffix: str, produce: Callable[[Path], None]) -> Path:
    """Path of a cached file, calling ``produce(tmp_path)`` to make it on a miss."""
    final = entry_dir(kind) / f"{key}{suffix}"
    if final.exists() and final.stat().st_size > 0:
        mark_used(final)
        return final
    with atomic_path(final) as tmp:
        produce(tmp)
    return final


def cache_info() -> dict[str, Any]:
    """Bytes and file counts per artifact kind, total usage and the quota."""
    root = cache_root()
    kinds = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        files, size = _tree_size(d)
        kinds[d.name] = {"files": files, "bytes": size, "evictable": d.name in DERIVED_KINDS}
    limit = max_bytes()
    total = usage_bytes()
    return {"root": str(root), "kinds": kinds, "total_bytes": total, "max_bytes": limit,
            "used_fraction": None if limit is None else total / limit, "known_kinds": list(KNOWN_KINDS)}
