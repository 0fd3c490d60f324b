"""Datasets: shipped samples, ImageFolder directories and zips, safe image loading.

:func:`open_dataset` is the one way to open one (a sample name, a folder or a zip).
"""

from .folder import ImageDataset, ImageItem, extract_zip, scan_folder
from .images import fit_square, load_for_model, load_image
from .registry import DATASETS, DEFAULT_DATASET, dataset_fingerprint, get_dataset_spec, list_datasets, open_dataset

__all__ = [
    "DATASETS", "DEFAULT_DATASET", "ImageDataset", "ImageItem", "dataset_fingerprint", "extract_zip", "fit_square",
    "get_dataset_spec", "list_datasets", "load_for_model", "load_image", "open_dataset", "scan_folder",
]
