"""Generate the bad-input corpus: odd images, odd folders, hostile archives.

    python tests/bad_inputs.py OUT_DIR      # writes every case and prints a manifest

Every case is built from code (no binary blobs in the repo). ``expect`` is
``"error"`` (a clear message containing ``message``, exit code 2, nothing in
the cache changed) or ``"ok"`` (it loads; ``check`` names the property tested).
``kind`` says how it is fed in: ``image`` (predict / upload), ``folder`` or
``zip`` (a dataset).
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "image" | "folder" | "zip"
    expect: str  # "error" | "ok"
    message: str  # expected in the error, or the property checked for "ok"
    make: Callable[[Path], Path]


def _img(mode: str = "RGB", size=(48, 32), color=(200, 40, 40)) -> Image.Image:
    img = Image.new(mode, size, color)
    if mode in ("RGB", "RGBA", "CMYK"):
        img.paste((20, 20, 220)[: len(img.getbands())] if mode != "CMYK" else (200, 0, 0, 0), (0, 0, size[0] // 2, size[1]))
    return img


def _save(img: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _bomb_png(path: Path) -> Path:
    """A valid PNG header declaring 100000×100000 pixels (refused before decoding)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return _bytes(path, b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _palette() -> Image.Image:
    """Palette image: index 0 (red, declared transparent) on the left half, index 1 (blue) on the right."""
    img = Image.new("P", (40, 30), 1)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(0, (0, 0, 20, 30))
    return img


def _exif_rotated(path: Path) -> Path:
    """Stored 60×30 (left half blue), EXIF orientation 6: displayed upright it is 30×60, blue on top."""
    img = _img("RGB", (60, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(img, path, exif=exif.tobytes(), quality=95)


def _animated(path: Path, fmt: str) -> Path:
    frames = [_img("RGB", (40, 40), c) for c in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    extra = {"lossless": True} if fmt == "WEBP" else {}
    return _save(frames[0], path, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **extra)


def _huge_jpeg(path: Path) -> Path:
    img = Image.new("L", (20000, 20000), 128)
    img.paste(255, (0, 0, 10000, 10000))
    return _save(img, path, quality=50)


def _folder(path: Path, files: dict[str, bytes | None]) -> Path:
    for rel, data in files.items():
        target = path / rel
        if data is None:
            target.mkdir(parents=True, exist_ok=True)
        else:
            _bytes(target, data)
    return path


def _zip(path: Path, entries: dict[str, bytes], deflate: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path


RED, BLUE = _png_bytes(_img("RGB", (40, 40), (230, 20, 20))), _png_bytes(_img("RGB", (40, 40), (20, 20, 230)))
GREEN = _png_bytes(_img("RGB", (40, 40), (20, 200, 20)))


def _encrypted_zip(path: Path) -> Path:
    """A zip whose entry has the 'encrypted' flag (bit 0) set in both headers, as a password-protected one does
    (the stdlib cannot write real ZipCrypto; readers decide from this flag)."""
    _zip(path, {"cats/a.png": RED, "cats/b.png": BLUE})
    data = bytearray(path.read_bytes())
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (i := data.find(sig, start)) >= 0:
            data[i + flag_at] |= 0x1
            start = i + 4
    path.write_bytes(bytes(data))
    return path


def _duplicate_zip(path: Path) -> Path:
    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as z:
        warnings.simplefilter("ignore")  # "Duplicate name": exactly the case under test
        for data in (RED, BLUE):
            z.writestr("cats/a.png", data)
    return path


def _symlinked(path: Path) -> Path:
    _folder(path, {"cats/a.png": RED, "cats/b.png": BLUE})
    outside = _bytes(path.parent / f"{path.name}-secret.png", GREEN)
    os.symlink(outside, path / "cats" / "escape.png")
    return path


CASES: list[Case] = [
    # images: refused with a clear message
    Case("empty_file", "image", "error", "not an image file", lambda d: _bytes(d / "empty.jpg", b"")),
    Case("text_renamed_jpg", "image", "error", "not an image file", lambda d: _bytes(d / "notes.jpg", b"shopping list: milk\n" * 20)),
    Case("truncated_jpeg", "image", "error", "broken or truncated",
         lambda d: _bytes(d / "cut.jpg", (lambda b: b[: len(b) // 2])(_save(_img(size=(256, 256)), d / "_full.jpg", quality=90).read_bytes()))),
    Case("truncated_png", "image", "error", "broken or truncated",
         lambda d: _bytes(d / "cut.png", _png_bytes(_img(size=(256, 256)))[:90])),
    Case("decompression_bomb", "image", "error", "decompression bomb", lambda d: _bomb_png(d / "bomb.png")),
    Case("svg", "image", "error", "not an image file",
         lambda d: _bytes(d / "logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>')),
    Case("heic", "image", "error", "not an image file",
         lambda d: _bytes(d / "phone.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)),
    # images: loaded correctly
    Case("huge_20000px_jpeg", "image", "ok", "downscaled to at most 2048 px", lambda d: _huge_jpeg(d / "huge.jpg")),
    Case("png_16bit", "image", "ok", "RGB", lambda d: _save(Image.new("I;16", (40, 30), 40000), d / "deep.png")),
    Case("cmyk_jpeg", "image", "ok", "RGB", lambda d: _save(_img("CMYK", (40, 30)), d / "print.jpg")),
    Case("palette_png_transparency", "image", "ok", "transparent → white",
         lambda d: _save(_palette(), d / "pal.png", transparency=0)),
    Case("la_png", "image", "ok", "RGB", lambda d: _save(Image.new("LA", (40, 30), (90, 128)), d / "la.png")),
    Case("rgba_png", "image", "ok", "transparent → white", lambda d: _save(Image.new("RGBA", (40, 30), (255, 0, 0, 0)), d / "clear.png")),
    Case("animated_gif", "image", "ok", "first frame", lambda d: _animated(d / "anim.gif", "GIF")),
    Case("animated_webp", "image", "ok", "first frame", lambda d: _animated(d / "anim.webp", "WEBP")),
    Case("exif_rotated_jpeg", "image", "ok", "upright", lambda d: _exif_rotated(d / "phone.jpg")),
    Case("one_pixel", "image", "ok", "RGB", lambda d: _save(Image.new("RGB", (1, 1), (9, 9, 9)), d / "dot.png")),
    Case("grayscale", "image", "ok", "RGB", lambda d: _save(Image.new("L", (40, 30), 77), d / "gray.png")),
    # folders
    Case("folder_empty_class", "folder", "ok", "empty class left out",
         lambda d: _folder(d / "emptyclass", {"cats/a.png": RED, "cats/b.png": BLUE, "dogs": None})),
    Case("folder_single_image", "folder", "ok", "one image, no neighbours", lambda d: _folder(d / "single", {"only/a.png": RED})),
    Case("folder_non_images_mixed", "folder", "ok", "non-images skipped",
         lambda d: _folder(d / "mixed", {"cats/a.png": RED, "cats/b.png": BLUE, "cats/readme.txt": b"hi",
                                         "cats/model.pkl": b"\x80\x04junk", "cats/.hidden.png": RED})),
    Case("folder_symlink_outside", "folder", "ok", "link outside skipped", lambda d: _symlinked(d / "symlinked")),
    Case("folder_unicode_and_spaces", "folder", "ok", "names kept",
         lambda d: _folder(d / "unicode", {"chats blancs/été 1.png": RED, "chats blancs/猫 2.png": BLUE, "dogs/a b.png": GREEN})),
    Case("folder_duplicates", "folder", "ok", "duplicate found first",
         lambda d: _folder(d / "dups", {"x/a.png": RED, "x/a copy.png": RED, "y/b.png": BLUE})),
    # archives: refused, nothing extracted
    Case("zip_slip", "zip", "error", "refused", lambda d: _zip(d / "slip.zip", {"cats/a.png": RED, "../../evil.png": RED})),
    Case("zip_absolute_path", "zip", "error", "refused", lambda d: _zip(d / "abs.zip", {"cats/a.png": RED, "/etc/evil.png": RED})),
    Case("zip_bomb", "zip", "error", "zip bomb", lambda d: _zip(d / "bomb.zip", {"cats/a.png": RED, "cats/big.png": b"\0" * 50_000_000}, deflate=True)),
    Case("zip_not_a_zip", "zip", "error", "not a readable zip", lambda d: _bytes(d / "fake.zip", b"PK\x03\x04garbage")),
    Case("zip_file_and_folder_same_name", "zip", "error", "is both a file and a folder",
         lambda d: _zip(d / "clash.zip", {"cats/a.png": RED, "cats/a.png/b.png": BLUE})),
    Case("zip_duplicate_names", "zip", "error", "appears twice", lambda d: _duplicate_zip(d / "dup.zip")),
    Case("zip_encrypted", "zip", "error", "is encrypted", lambda d: _encrypted_zip(d / "locked.zip")),
]


def build(out: Path) -> list[tuple[Case, Path]]:
    out.mkdir(parents=True, exist_ok=True)
    return [(case, case.make(out)) for case in CASES]


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "bad-inputs")
    print(json.dumps([{"name": c.name, "kind": c.kind, "expect": c.expect, "message": c.message, "path": str(p)}
                      for c, p in build(target)], indent=1, ensure_ascii=False))
