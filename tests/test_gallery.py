"""Gallery paging and filtering, contact-sheet geometry, the on-demand thumbnail store, the Fashion-MNIST export."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import struct

import numpy as np
import pytest
from PIL import Image

from cnnviz import gallery, thumbnails
from cnnviz.errors import DatasetError

IDS = [f"{c}/img_{i:03d}.png" for c in ("cat", "dog", "owl") for i in range(50)]
LABELS = [i.split("/")[0] for i in IDS]


def test_matching_filters_by_class_and_file_name():
    assert len(gallery.matching(IDS, LABELS)) == 150
    dogs = gallery.matching(IDS, LABELS, "dog")
    assert [IDS[i] for i in dogs] == [i for i in IDS if i.startswith("dog/")]
    hits = gallery.matching(IDS, LABELS, None, " IMG_007 ")  # trimmed, case-insensitive
    assert [IDS[i] for i in hits] == ["cat/img_007.png", "dog/img_007.png", "owl/img_007.png"]
    assert [IDS[i] for i in gallery.matching(IDS, LABELS, "owl", "007")] == ["owl/img_007.png"]
    assert len(gallery.matching(IDS, LABELS, "cow")) == 0


def test_pages_cover_every_match_once_and_clamp():
    found = gallery.matching(IDS, LABELS)
    pages = [gallery.page_of(found, n, per_page=60) for n in (1, 2, 3)]
    assert [p.n_pages for p in pages] == [3, 3, 3]
    assert [len(p.indices) for p in pages] == [60, 60, 30]
    assert sorted(i for p in pages for i in p.indices) == list(range(150))
    assert pages[1].first == 61
    assert gallery.page_of(found, 99, 60).number == 3 and gallery.page_of(found, -5, 60).number == 1
    empty = gallery.page_of(np.array([], dtype=np.int64), 4, 60)
    assert (empty.number, empty.n_pages, empty.indices, empty.first) == (1, 1, (), 0)


def test_random_page_is_another_valid_page():
    rng = np.random.default_rng(0)
    picks = {gallery.random_page(5, 3, rng) for _ in range(200)}
    assert picks == {1, 2, 4, 5}
    assert gallery.random_page(1, 1, rng) == 1


def test_cell_at_maps_clicks_back_to_cells_at_any_display_width():
    layout = gallery.SheetLayout(columns=4, cell=100, caption=10, gap=10)
    w, h = layout.size(10)  # 3 rows, the last one partly empty
    assert (w, h) == (4 * 110 - 10, 3 * 120 - 10)
    assert layout.cell_at(5, 5, w, h, 10) == 0
    assert layout.cell_at(110 + 50, 120 + 105, w, h, 10) == 5  # on cell 5's caption
    assert layout.cell_at(105, 5, w, h, 10) is None  # the gap between cells 0 and 1
    assert layout.cell_at(3 * 110 + 5, 2 * 120 + 5, w, h, 10) is None  # past the last image
    # The same click on the sheet shown at half size.
    assert layout.cell_at((110 + 50) / 2, (120 + 105) / 2, w / 2, h / 2, 10) == 5


def test_a_click_is_read_on_the_page_it_was_made_on():
    layout = gallery.SheetLayout(columns=4, cell=100, caption=10, gap=10)
    w, h = layout.size(8)
    shown: dict = {}
    first = gallery.remember_page(shown, [f"a{n}" for n in range(8)])
    second = gallery.remember_page(shown, [f"b{n}" for n in range(8)])  # drawn after; the user clicked the first
    on_cell_5 = {"x": 110 + 50, "y": 120 + 50, "width": w, "height": h}
    assert gallery.clicked_id(shown, {**on_cell_5, "page": first}, layout) == "a5"
    assert gallery.clicked_id(shown, {**on_cell_5, "page": second}, layout) == "b5"
    assert gallery.clicked_id(shown, {**on_cell_5, "page": "unknown"}, layout) is None
    assert gallery.clicked_id(shown, {"x": 105, "y": 5, "width": w, "height": h, "page": first}, layout) is None  # gap
    assert gallery.clicked_id(shown, {"page": first, "x": "?"}, layout) is None  # not a click the sheet sends
    assert gallery.clicked_id(shown, None, layout) is None  # no click yet


def test_remember_page_keeps_the_last_pages_only():
    shown: dict = {}
    tokens = [gallery.remember_page(shown, [f"p{n}"], keep=3) for n in range(5)]
    assert list(shown) == tokens[2:]
    assert gallery.remember_page(shown, ["p2"], keep=3) == tokens[2] and list(shown)[-1] == tokens[2]  # seen again: newest


def _write(path, color, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def test_draw_sheet_puts_each_image_in_its_cell(tmp_path, isolated_cache):
    colors = [(230, 20, 20), (20, 200, 20), (20, 20, 230), (240, 200, 0), (0, 0, 0)]
    paths = [_write(tmp_path / f"{n}.png", c) for n, c in enumerate(colors)]
    layout = gallery.SheetLayout(columns=3, cell=48, caption=14, gap=4)
    sheet = Image.open(io.BytesIO(gallery.draw_sheet(paths, [f"c{n}" for n in range(5)], layout)))
    assert sheet.format == "JPEG" and sheet.size == layout.size(5)
    for n, color in enumerate(colors):
        x = (n % 3) * layout.pitch_x + layout.cell // 2
        y = (n // 3) * layout.pitch_y + layout.cell // 2
        assert np.abs(np.subtract(sheet.getpixel((x, y)), color)).max() < 40, n
        assert layout.cell_at(x, y, *sheet.size, 5) == n  # a click there picks that image


def test_thumbnail_store_is_keyed_by_content_and_made_once(tmp_path, isolated_cache, monkeypatch):
    a = _write(tmp_path / "a.png", (200, 10, 10), (300, 200))
    copy = tmp_path / "elsewhere" / "copy.png"
    copy.parent.mkdir()
    shutil.copy(a, copy)
    made = []
    from cnnviz.data import images

    real = images.load_thumbnail
    monkeypatch.setattr(images, "load_thumbnail", lambda p, s: made.append(str(p)) or real(p, s))
    first = thumbnails.thumbnail_path(a, 64)
    assert first.is_relative_to(isolated_cache)
    assert Image.open(first).size == (64, 43)
    assert thumbnails.thumbnail_path(copy, 64) == first  # same content: same file, not encoded again
    assert thumbnails.thumbnail_path(a, 32) != first  # another size: another entry
    assert len(made) == 2
    _write(a, (10, 200, 10), (300, 200))  # edited in place: a new thumbnail
    assert thumbnails.thumbnail_path(a, 64) != first
    assert np.argmax(Image.open(thumbnails.thumbnail_path(a, 64)).getpixel((30, 20))) == 1
    small = _write(tmp_path / "small.png", (0, 0, 200), (28, 14))
    assert Image.open(thumbnails.thumbnail_path(small, 64)).size == (64, 32)  # enlarged to be seen


def test_data_uris_encode_only_the_requested_images(tmp_path, isolated_cache):
    paths = [_write(tmp_path / f"{n}.png", (n * 5, 100, 100)) for n in range(40)]
    uris = thumbnails.data_uris(paths[5:38:3], 32)
    assert len(uris) == 11 and all(u.startswith("data:image/jpeg;base64,") for u in uris)
    stored = list(isolated_cache.rglob("*.jpg"))
    assert len(stored) == 11
    assert thumbnails.data_uris(paths[5:38:3], 32) == uris  # memoised, identical


def _idx_gz(path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_fashion(tmp_path):
    src = tmp_path / "idx"
    src.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("t10k", 23), ("train", 31)):
        _idx_gz(src / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _idx_gz(src / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return src


def test_fashion_export_writes_an_image_folder(fake_fashion, tmp_path):
    from cnnviz.data import scan_folder
    from cnnviz.data.export import export_fashion_mnist

    seen = []
    out = tmp_path / "fm"
    info = export_fashion_mnist(out, "all", source=fake_fashion, progress=lambda d, t: seen.append((d, t)))
    assert info["n_images"] == 54 and seen[-1] == (54, 54)
    ds = scan_folder(out)
    assert len(ds.items) == 54 and len(ds.classes) == 10
    assert ds.items[0].id == "ankle_boot/test_00009.png"
    img = np.asarray(Image.open(out / "ankle_boot" / "test_00009.png"))
    assert img.shape == (28, 28)
    assert not (tmp_path / "fm.partial").exists()
    with pytest.raises(DatasetError, match="already exists"):
        export_fashion_mnist(out, "test", source=fake_fashion)  # never overwrites
    with pytest.raises(DatasetError, match="dataset-fashion-mnist"):
        export_fashion_mnist(tmp_path / "x", "test", source=tmp_path / "missing")


def test_datasets_export_cli(fake_fashion, tmp_path, monkeypatch, capsys):
    from cnnviz.cli import main
    from cnnviz.data import export

    monkeypatch.setattr(export, "FASHION", fake_fashion)
    monkeypatch.setattr(export.export_fashion_mnist, "__defaults__", ("test", fake_fashion, None))
    assert main(["datasets", "export", "fashion-mnist", "--split", "test", "--out", str(tmp_path / "o"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_images"] == 23
    assert main(["datasets", "export", "fashion-mnist", "--out", str(tmp_path / "o")]) == 2  # exists: refused
    assert "already exists" in capsys.readouterr().err
    assert main(["datasets", "--names-only"]) == 0 and "stamps" in capsys.readouterr().out
