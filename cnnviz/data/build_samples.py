"""Rebuild the sample datasets shipped in cnnviz/data/samples (maintainers only).

Users get the committed images; this script documents and reproduces them:

    apt-get install tuxpaint-stamps-default dataset-fashion-mnist unicode-data
    npm pack @lobehub/fluent-emoji-3d@1.1.0      # into a temp folder
    python -m cnnviz.data.build_samples --emoji-tgz lobehub-fluent-emoji-3d-1.1.0.tgz

Every image is flattened onto white, padded to a square and saved at 128 px
(Fashion-MNIST keeps its native 28 px), so the sets stay a few MB.
"""

from __future__ import annotations

import argparse
import gzip
import io
import re
import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLES = Path(__file__).resolve().parent / "samples"
PER_CLASS = 20
SIZE = 128

TUXPAINT = Path("/usr/share/tuxpaint/stamps")
STAMP_CLASSES = {
    "birds": "animals/birds", "mammals": "animals/mammals", "fruit": "food/fruit", "vegetables": "food/vegetables",
    "flowers": "plants/flowers", "roadsigns": "town/roadsigns", "money": "symbols/money",
    "christmas": "seasonal/christmas", "halloween": "seasonal/halloween", "tools": "household/tools",
}

EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
EMOJI_SUBGROUPS = (
    "animal-mammal", "animal-bird", "animal-marine", "animal-bug", "food-fruit", "food-vegetable",
    "food-prepared", "transport-ground", "clothing", "sport",
)

FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot")


def _square_on_white(img: Image.Image, size: int = SIZE) -> Image.Image:
    img = img.convert("RGBA")
    bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
    img = Image.alpha_composite(bg, img).convert("RGB")
    bbox = Image.eval(img, lambda v: 255 - v).getbbox() or (0, 0, *img.size)
    img = img.crop(bbox)
    side = max(img.size)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    return canvas.resize((size, size), Image.LANCZOS)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def build_stamps(out: Path) -> None:
    for cls, sub in STAMP_CLASSES.items():
        files = sorted(p for p in (TUXPAINT / sub).rglob("*.png") if "cartoon" not in p.parts)[:PER_CLASS]
        (out / cls).mkdir(parents=True)
        for p in files:
            _square_on_white(Image.open(p)).save(out / cls / f"{_slug(p.stem)}.jpg", quality=90)


def _emoji_subgroups() -> dict[str, str]:
    """codepoint key (as in the npm file names) -> subgroup, fully-qualified, no skin tones."""
    mapping, sub = {}, None
    for line in EMOJI_TEST.read_text(encoding="utf-8").splitlines():
        if line.startswith("# subgroup:"):
            sub = line.split(":", 1)[1].strip()
        elif "; fully-qualified" in line and sub:
            cps = line.split(";")[0].split()
            if any(c in cps for c in ("1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF")):
                continue
            mapping["-".join(c.lower() for c in cps)] = sub
    return mapping


def build_emoji(out: Path, tgz: Path) -> None:
    subgroups = _emoji_subgroups()
    chosen: dict[str, list[tuple[str, bytes]]] = {s: [] for s in EMOJI_SUBGROUPS}
    with tarfile.open(tgz) as tar:  # read members as bytes; nothing is extracted to disk
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            name = Path(m.name)
            if not (m.isfile() and name.suffix == ".webp" and name.parent.name == "assets"):
                continue
            sub = subgroups.get(name.stem)
            if sub in chosen and len(chosen[sub]) < PER_CLASS:
                chosen[sub].append((name.stem, tar.extractfile(m).read()))
    for sub, items in chosen.items():
        cls = sub.replace("-", "_")
        (out / cls).mkdir(parents=True)
        for stem, data in items:
            _square_on_white(Image.open(io.BytesIO(data))).save(out / cls / f"{stem}.jpg", quality=90)


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path) as f:
        data = f.read()
    _, _, ndim = struct.unpack(">HBB", data[:4])
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def build_fashion(out: Path) -> None:
    images, labels = _idx(FASHION / "t10k-images-idx3-ubyte.gz"), _idx(FASHION / "t10k-labels-idx1-ubyte.gz")
    for c, cls in enumerate(FASHION_CLASSES):
        (out / cls).mkdir(parents=True)
        for i in np.flatnonzero(labels == c)[:PER_CLASS]:
            Image.fromarray(255 - images[i]).save(out / cls / f"t10k_{i:05d}.png")  # dark on white, like a catalogue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emoji-tgz", type=Path, required=True)
    args = ap.parse_args()
    for name, build in (("stamps", build_stamps), ("emoji3d", lambda o: build_emoji(o, args.emoji_tgz)), ("fashion", build_fashion)):
        out = SAMPLES / name
        shutil.rmtree(out, ignore_errors=True)
        build(out)
        n = sum(1 for _ in out.rglob("*.*"))
        print(f"{name}: {n} images in {len(list(out.iterdir()))} classes")


if __name__ == "__main__":
    main()
