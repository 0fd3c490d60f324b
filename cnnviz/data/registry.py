"""Dataset registry: the shipped sample sets, plus any folder or zip by path."""

from __future__ import annotations

import dataclasses
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


def load_dataset(name: str) -> ImageDataset:
    """A shipped sample dataset by name."""
    spec = get_dataset_spec(name)
    return scan_folder(SAMPLES_DIR / spec.folder, name=spec.name, source=spec.source)


def open_images(path: str | Path) -> ImageDataset:
    """A dataset from a folder (ImageFolder layout or flat) or a zip of one."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    if p.is_file():
        if p.suffix.lower() != ".zip":
            raise DatasetError(f"{p.name}: expected a folder of images or a .zip of one")
        root = extract_zip(p, cache.entry_dir("datasets"))
        return scan_folder(root, name=p.stem, source=f"zip {p.name}")
    return scan_folder(p)


def open_dataset(ref: str) -> ImageDataset:
    """A dataset from a reference: a sample-set name, or a folder/zip path."""
    return load_dataset(ref) if ref in DATASETS else open_images(ref)


def resolve_dataset(dataset: str | None = None, images: str | Path | None = None) -> ImageDataset:
    """Exactly one of a sample-set name or an images path."""
    if (dataset is None) == (images is None):
        raise DatasetError("give exactly one of a dataset name or an images folder/zip")
    return load_dataset(dataset) if dataset is not None else open_images(images)
