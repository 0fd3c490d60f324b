"""Datasets: shipped samples, ImageFolder directories and zips, safe image loading."""

from .folder import ImageDataset, ImageItem, extract_zip, scan_folder
from .images import fit_square, load_for_model, load_image
from .registry import DATASETS, DEFAULT_DATASET, get_dataset_spec, list_datasets, load_dataset, open_dataset, open_images, resolve_dataset

__all__ = [
    "DATASETS", "DEFAULT_DATASET", "ImageDataset", "ImageItem", "extract_zip", "fit_square", "get_dataset_spec",
    "list_datasets", "load_dataset", "load_for_model", "load_image", "open_dataset", "open_images", "resolve_dataset", "scan_folder",
]
