"""Image datasets from folders ("ImageFolder": one sub-folder per class) and zips."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath

from .. import cache
from ..cache import file_digest
from ..errors import DatasetError
from .images import is_image_name, max_file_bytes

MAX_ZIP_BYTES = 2 * 1024**3  # total uncompressed size accepted from one archive
MAX_ZIP_RATIO = 200  # larger expansion ratios are treated as zip bombs
MAX_ZIP_FILES = 200_000


@dataclass(frozen=True)
class ImageItem:
    id: str  # path relative to the dataset root, POSIX separators
    path: Path
    label: str | None  # class = first folder under the root; None at the root


@dataclass(frozen=True)
class ImageDataset:
    name: str
    root: Path
    items: tuple[ImageItem, ...]
    source: str = "folder"
    skipped: tuple[str, ...] = field(default=())  # files ignored, with reasons

    # Cached: a page asks for these per drawn point (5,000 on a map), and each used to rebuild a list of
    # every image (10k images: 16 s of one Search run). Tuples, because a dataset is shared by every session.
    @cached_property
    def labelled(self) -> bool:
        return bool(self.items) and all(i.label is not None for i in self.items)

    @cached_property
    def classes(self) -> tuple[str, ...]:
        return tuple(sorted({i.label for i in self.items if i.label is not None}))

    @cached_property
    def labels(self) -> tuple[str | None, ...]:
        return tuple(i.label for i in self.items)

    @cached_property
    def ids(self) -> tuple[str, ...]:
        return tuple(i.id for i in self.items)

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {item_id: n for n, item_id in enumerate(self.ids)}

    def index_of(self, item_id: str) -> int:
        try:
            return self._positions[item_id]
        except KeyError:
            raise DatasetError(f"{self.name}: no image with id {item_id!r}") from None

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._positions

    def digest(self) -> str:
        """sha256 over every image's id and content: the dataset's cache identity."""
        h = hashlib.sha256()
        for item in self.items:
            h.update(item.id.encode())
            h.update(_file_digest(item.path).encode())
        return h.hexdigest()


_DIGEST_MEMO: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    st = path.stat()
    memo_key = (str(path), st.st_size, st.st_mtime_ns)
    if memo_key not in _DIGEST_MEMO:
        _DIGEST_MEMO[memo_key] = file_digest(path)
    return _DIGEST_MEMO[memo_key]


def scan_folder(root: str | Path, name: str | None = None, source: str = "folder") -> ImageDataset:
    """Index every image under ``root``; the first folder level is the class.

    Images directly in ``root`` have no label (a folder of only those is an
    unlabelled dataset). Hidden files, non-images and links that leave the
    folder are skipped and reported in ``skipped``.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    real_root = root.resolve()
    items, skipped = [], []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            path = Path(dirpath) / fn
            rel = path.relative_to(root).as_posix()
            if not is_image_name(fn):
                if not fn.startswith("."):
                    skipped.append(f"{rel}: not an image file name")
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(real_root):
                skipped.append(f"{rel}: link points outside the dataset folder")
                continue
            if not path.is_file():
                continue
            parts = PurePosixPath(rel).parts
            items.append(ImageItem(rel, path, parts[0] if len(parts) > 1 else None))
    if not items:
        raise DatasetError(f"{root}: no images found (expected image files, optionally in one sub-folder per class)")
    return ImageDataset(name or root.name, root, tuple(items), source, tuple(skipped))


def _check_zip_member(info: zipfile.ZipInfo) -> str | None:
    """Why a member must not be extracted, or None when it is safe."""
    name = info.filename
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in pure.parts:
        return "path escapes the archive folder"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    return None


def _check_zip_names(members: list[zipfile.ZipInfo]) -> str | None:
    """Why the member names cannot all be extracted side by side (a duplicate, a file named like a folder)."""
    files: set[PurePosixPath] = set()
    folders: set[PurePosixPath] = set()
    for m in members:
        path = PurePosixPath(m.filename.replace("\\", "/"))
        if m.is_dir():
            folders.add(path)
        elif path in files:
            return f"entry {m.filename!r} appears twice"
        else:
            files.add(path)
        folders.update(p for p in path.parents if p != PurePosixPath("."))
    clash = sorted(files & folders)
    return f"{str(clash[0])!r} is both a file and a folder" if clash else None


def extract_zip(archive: str | Path, dest_root: Path) -> Path:
    """Safely unpack the images of an ImageFolder zip; returns the dataset folder.

    Refuses archives with entries that escape the folder, absolute paths,
    links, encrypted entries, clashing names (a duplicate, a file and a folder of
    the same name), too many files or a suspicious expansion ratio, all before
    anything is written; only image files are written. Extraction goes to a
    unique temp folder (one per call, so concurrent uploads never share one)
    renamed into place, keyed by the archive's sha256, so a second call reuses it.
    A full disk or cache quota mid-extraction leaves nothing behind.
    """
    archive = Path(archive)
    if archive.stat().st_size > max_file_bytes():
        raise DatasetError(f"{archive.name}: {archive.stat().st_size / 1024**2:.0f} MB is over the "
                           f"{max_file_bytes() / 1024**2:g} MB archive limit (pass a folder instead, or set CNNVIZ_MAX_FILE_MB)")
    digest = file_digest(archive)
    final = dest_root / digest[:24]
    if final.is_dir():
        return _single_top_folder(final)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{archive.name}: not a readable zip archive ({exc})") from None
    with zf:
        members = zf.infolist()
        if not members:
            raise DatasetError(f"{archive.name}: the archive is empty")
        if len(members) > MAX_ZIP_FILES:
            raise DatasetError(f"{archive.name}: {len(members)} entries is over the {MAX_ZIP_FILES} limit")
        total = sum(m.file_size for m in members)
        packed = max(1, sum(m.compress_size for m in members))
        if total > MAX_ZIP_BYTES or total / packed > MAX_ZIP_RATIO:
            raise DatasetError(f"{archive.name}: expands to {total:,} bytes ({total / packed:.0f}× its size): refused as a possible zip bomb")
        for m in members:
            reason = _check_zip_member(m)
            if reason:
                raise DatasetError(f"{archive.name}: entry {m.filename!r} refused ({reason}); nothing was extracted")
            if m.flag_bits & 0x1:
                raise DatasetError(f"{archive.name}: entry {m.filename!r} is encrypted (password-protected zips are "
                                   "not supported); nothing was extracted")
        if clash := _check_zip_names(members):
            raise DatasetError(f"{archive.name}: names clash ({clash}); nothing was extracted")
        images = [m for m in members if not m.is_dir() and is_image_name(m.filename)]
        if not images:
            raise DatasetError(f"{archive.name}: contains no image files")
        dest_root.mkdir(parents=True, exist_ok=True)
        cache.evict(sum(m.file_size for m in images))  # the quota makes room first, or refuses with a clear message
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{digest[:24]}-", dir=dest_root))
        try:
            for m in images:
                target = tmp / PurePosixPath(m.filename.replace("\\", "/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(m) as src, open(target, "wb") as dst:
                    remaining = m.file_size + 1
                    while chunk := src.read(1 << 20):
                        remaining -= len(chunk)
                        if remaining < 0:
                            raise DatasetError(f"{archive.name}: entry {m.filename!r} is larger than declared")
                        dst.write(chunk)
            try:
                os.replace(tmp, final)
            except OSError:
                if not final.is_dir():  # else another upload of the same archive finished first: use it
                    raise
        except zipfile.BadZipFile as exc:
            raise DatasetError(f"{archive.name}: corrupt archive ({exc})") from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
                raise DatasetError(f"{archive.name}: the disk is full ({exc.strerror}); nothing was kept") from None
            raise
        finally:
            if tmp.exists():
                _remove_tmp(tmp)
    return _single_top_folder(final)


def _remove_tmp(tmp: Path) -> None:
    """Our own temp folder: through the cache's guarded delete when it lies in the cache (it always does
    from the dashboard); a caller-chosen destination elsewhere is cleaned directly."""
    if tmp.resolve().is_relative_to(cache.cache_root()):
        cache.safe_remove(tmp.resolve())
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def _single_top_folder(folder: Path) -> Path:
    """A zip of ``MyData/<class>/...`` yields ``MyData`` as the dataset root."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        inner = [p for p in entries[0].iterdir() if not p.name.startswith(".")]
        if inner and all(p.is_dir() for p in inner):
            return entries[0]
    return folder
