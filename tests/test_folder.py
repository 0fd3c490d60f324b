import os
import zipfile

import pytest

from cnnviz.data import open_dataset, scan_folder
from cnnviz.data.registry import list_datasets
from cnnviz.errors import DatasetError, UnknownNameError
from conftest import write_image


def test_sample_datasets_are_small_labelled_and_loadable():
    for name in list_datasets():
        ds = open_dataset(name)
        assert ds.labelled and len(ds.classes) == 10
        assert 150 <= len(ds.items) <= 200
    with pytest.raises(UnknownNameError, match="stamps"):
        open_dataset("nope")


def test_imagefolder_nested_mixed_formats_and_junk(tmp_path):
    write_image(tmp_path / "cats" / "a.jpg")
    write_image(tmp_path / "cats" / "deep" / "b.png")
    write_image(tmp_path / "dogs" / "c.webp")
    (tmp_path / "dogs" / "notes.txt").write_text("hi")
    (tmp_path / "empty_class").mkdir()
    (tmp_path / ".hidden").mkdir()
    write_image(tmp_path / ".hidden" / "x.jpg")
    ds = scan_folder(tmp_path)
    assert list(ds.ids) == ["cats/a.jpg", "cats/deep/b.png", "dogs/c.webp"]
    assert list(ds.labels) == ["cats", "cats", "dogs"] and list(ds.classes) == ["cats", "dogs"] and ds.labelled
    assert any("notes.txt" in s for s in ds.skipped)


def test_unlabelled_flat_folder(tmp_path):
    write_image(tmp_path / "one.jpg")
    write_image(tmp_path / "two.png")
    ds = scan_folder(tmp_path)
    assert not ds.labelled and list(ds.labels) == [None, None]


def test_empty_folder_and_missing_path(tmp_path):
    with pytest.raises(DatasetError, match="no images"):
        scan_folder(tmp_path)
    with pytest.raises(DatasetError, match="no such"):
        open_dataset(tmp_path / "missing")


def test_symlink_outside_is_skipped(tmp_path):
    outside = write_image(tmp_path / "outside.jpg")
    root = tmp_path / "data"
    write_image(root / "a" / "in.jpg")
    os.symlink(outside, root / "a" / "link.jpg")
    ds = scan_folder(root)
    assert list(ds.ids) == ["a/in.jpg"] and any("outside" in s for s in ds.skipped)


def test_digest_changes_with_content(tmp_path):
    p = write_image(tmp_path / "a" / "x.png", color=(1, 2, 3))
    d1 = scan_folder(tmp_path).digest()
    write_image(p, color=(9, 9, 9))
    os.utime(p, ns=(1, 1))
    assert scan_folder(tmp_path).digest() != d1


def _zip(path, entries: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_zip_of_imagefolder(tmp_path, isolated_cache):
    img = write_image(tmp_path / "src.png").read_bytes()
    z = _zip(tmp_path / "set.zip", {"MySet/cats/a.png": img, "MySet/dogs/b.png": img, "MySet/readme.txt": b"x"})
    ds = open_dataset(z)
    assert list(ds.classes) == ["cats", "dogs"] and len(ds.items) == 2
    assert open_dataset(z).root == ds.root  # reused, not extracted twice


@pytest.mark.parametrize("bad_name,reason", [("../evil.png", "escapes"), ("/abs/evil.png", "absolute"), ("a/../../evil.png", "escapes")])
def test_zip_slip_is_refused_and_writes_nothing(tmp_path, isolated_cache, bad_name, reason):
    img = write_image(tmp_path / "src.png").read_bytes()
    z = _zip(tmp_path / "bad.zip", {"ok/a.png": img, bad_name: img})
    with pytest.raises(DatasetError, match=reason):
        open_dataset(z)
    assert not (tmp_path / "evil.png").exists()
    assert not list((isolated_cache / "datasets").iterdir())


def test_broken_and_empty_zips(tmp_path, isolated_cache):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DatasetError, match="not a readable zip"):
        open_dataset(bad)
    with pytest.raises(DatasetError, match="empty"):
        open_dataset(_zip(tmp_path / "empty.zip", {}))
    with pytest.raises(DatasetError, match="no image"):
        open_dataset(_zip(tmp_path / "text.zip", {"a.txt": b"x"}))


def test_zip_bomb_ratio_is_refused(tmp_path, isolated_cache):
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/big.png", b"\0" * 50_000_000)
    with pytest.raises(DatasetError, match="zip bomb"):
        open_dataset(z)
