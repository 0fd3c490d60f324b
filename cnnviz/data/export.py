"""Write packaged datasets out as ImageFolders (one sub-folder per class), e.g. for scale tests.

Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` (IDX files in
/usr/share/datasets/fashion-mnist). Images are written as 28 px PNGs, dark on
white like the shipped ``fashion`` sample, named ``<split>_<index>.png``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import Image

from ..errors import DatasetError
from ..progress import Progress
from .build_samples import FASHION, FASHION_CLASSES, _idx

EXPORTS = ("fashion-mnist",)
SPLITS = {"test": ("t10k",), "train": ("train",), "all": ("train", "t10k")}


def export_fashion_mnist(out: str | os.PathLike, split: str = "test", source: str | os.PathLike = FASHION,
                         progress: Progress | None = None) -> dict:
    """Write Fashion-MNIST ``split`` (test: 10,000, train: 60,000, all: 70,000) as an ImageFolder at ``out``.

    The images go to ``<out>.partial`` first and the folder is renamed when
    complete, so an interrupted export never looks like a finished one. An
    existing non-empty ``out`` is refused (nothing is overwritten).
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    out, source = Path(out), Path(source)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out} already exists and is not an empty folder; choose another --out")
    parts = []
    for prefix in SPLITS[split]:
        images, labels = source / f"{prefix}-images-idx3-ubyte.gz", source / f"{prefix}-labels-idx1-ubyte.gz"
        if not (images.is_file() and labels.is_file()):
            raise DatasetError(f"{images.name} / {labels.name} not found in {source}; "
                               "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)")
        parts.append((prefix, _idx(images), _idx(labels)))
    total = sum(len(lab) for _, _, lab in parts)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)  # our own leftover from an interrupted run
    for cls in FASHION_CLASSES:
        (tmp / cls).mkdir(parents=True)
    done = 0
    for prefix, images, labels in parts:
        name = "test" if prefix == "t10k" else "train"
        for i, (img, lab) in enumerate(zip(images, labels)):
            Image.fromarray(255 - img).save(tmp / FASHION_CLASSES[int(lab)] / f"{name}_{i:05d}.png")
            done += 1
            if progress and (done % 500 == 0 or done == total):
                progress(done, total)
    if out.exists():
        out.rmdir()  # checked empty above
    tmp.rename(out)
    return {"dataset": "fashion-mnist", "split": split, "out": str(out), "n_images": total, "n_classes": len(FASHION_CLASSES)}


def export_dataset(name: str, out: str | os.PathLike, split: str = "test",
                   progress: Progress | None = None) -> dict:
    """Export a packaged dataset by name (see :data:`EXPORTS`)."""
    if name != "fashion-mnist":
        raise DatasetError(f"unknown dataset to export {name!r}; choose one of {', '.join(EXPORTS)}")
    return export_fashion_mnist(out, split, progress=progress)
