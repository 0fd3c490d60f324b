"""Dataset registry: the shipped sample sets, plus any folder or zip by path."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from .. import cache
from ..errors import DatasetError, UnknownNameError
from .folder import ImageDataset, extract_zip, scan_folder

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str  # under SAMPLES_DIR
    title: str
    source: str
    license: str


_SPECS = (
    DatasetSpec("stamps", "stamps", "Tux Paint stamps", "Debian tuxpaint-stamps-default (photo cut-outs)", "GPL-2.0-or-later"),
    DatasetSpec("emoji3d", "emoji3d", "Fluent Emoji 3D", "npm @lobehub/fluent-emoji-3d 1.1.0", "MIT"),
    DatasetSpec("fashion", "fashion", "Fashion-MNIST sample", "Debian dataset-fashion-mnist (test split)", "MIT"),
)
DATASETS: dict[str, DatasetSpec] = {s.name: s for s in _SPECS}
DEFAULT_DATASET = "stamps"


def list_datasets() -> list[str]:
    return list(DATASETS)


def get_dataset_spec(name: str) -> DatasetSpec:
    try:
        return dataclasses.replace(DATASETS[name])
    except KeyError:
        raise UnknownNameError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)} (or give a folder with --images)") from None


def open_dataset(ref: str | Path | None = None, *, images: str | Path | None = None) -> ImageDataset:
    """The one way to open a dataset.

    ``ref`` is a sample-set name (``stamps``; a ``str`` only) or the path of a folder (ImageFolder layout
    or flat) or of a ``.zip`` of one (checked, then extracted into the cache). ``images`` is a path only
    (the CLI's ``--images``, never read as a sample name). Give exactly one of the two.
    """
    if (ref is None) == (images is None):
        raise DatasetError("give exactly one of a dataset name or an images folder/zip")
    if images is not None:
        ref = Path(images)
    if isinstance(ref, str) and ref in DATASETS:
        spec = DATASETS[ref]
        return scan_folder(SAMPLES_DIR / spec.folder, name=spec.name, source=spec.source)
    p = Path(ref).expanduser()
    if not p.exists():
        if isinstance(ref, str) and not any(sep in ref for sep in "/\\") and not p.suffix:
            get_dataset_spec(ref)  # a bare unknown name: say which sample sets exist
        raise DatasetError(f"{p}: no such file or folder")
    if p.is_file():
        if p.suffix.lower() != ".zip":
            raise DatasetError(f"{p.name}: expected a folder of images or a .zip of one")
        root = extract_zip(p, cache.entry_dir("datasets"))
        return scan_folder(root, name=p.stem, source=f"zip {p.name}")
    return scan_folder(p)


def dataset_fingerprint(ref: str | Path) -> tuple:
    """A cheap signature that changes when a dataset's files do: the modification times of its folder and
    of each class folder (adding, removing or renaming an image changes its folder's), or the zip's size
    and time. A few ``stat`` calls, no file reads, so callers can check it on every rerun and rehash
    (:meth:`ImageDataset.digest`) only when it moves."""
    if isinstance(ref, str) and ref in DATASETS:
        ref = SAMPLES_DIR / DATASETS[ref].folder
    p = Path(ref).expanduser()
    try:
        st = p.stat()
        if not p.is_dir():
            return (str(p), st.st_size, st.st_mtime_ns)
        subs = []
        with os.scandir(p) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    subs.append((e.name, e.stat(follow_symlinks=False).st_mtime_ns))
        return (str(p), st.st_mtime_ns, tuple(sorted(subs)))
    except OSError:
        return (str(p), None)
