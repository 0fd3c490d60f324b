"""The bad-input corpus (tests/bad_inputs.py) through the library, the CLI and the UI.

Refused inputs: a clear one-line message, exit code 2, no traceback, and the
cache byte-for-byte as it was. Odd-but-valid inputs: loaded correctly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bad_inputs import CASES, build

from cnnviz.cli import main
from cnnviz.data import open_dataset
from cnnviz.data.images import MAX_SIDE, load_image
from cnnviz.errors import DatasetError

MODEL = "efficientnet_lite0"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return {case.name: path for case, path in build(tmp_path_factory.mktemp("bad-inputs"))}


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def cases(kind: str, expect: str):
    return [pytest.param(c, id=c.name) for c in CASES if c.kind == kind and c.expect == expect]


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 20 and {c.kind for c in CASES} == {"image", "folder", "zip"}


@pytest.mark.parametrize("case", cases("image", "error"))
def test_refused_image_in_the_cli(case, corpus, capsys, session_cache):
    main(["predict", str(corpus["grayscale"]), "--model", MODEL])  # model and weights are cached before the snapshot
    capsys.readouterr()
    before = snapshot(session_cache)
    for argv in (["predict", str(corpus[case.name]), "--model", MODEL],
                 ["attribute", str(corpus[case.name]), "--model", MODEL, "--auc-steps", "4"],
                 ["search", "--dataset", "stamps", "--model", MODEL, "--query", str(corpus[case.name])]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert case.message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert snapshot(session_cache) == before


@pytest.mark.parametrize("case", cases("zip", "error"))
def test_refused_archive_extracts_nothing(case, corpus, capsys, session_cache):
    before = snapshot(session_cache)
    with pytest.raises(DatasetError, match=case.message):
        open_dataset(corpus[case.name])
    assert main(["precompute", "--images", str(corpus[case.name]), "--model", MODEL, "--layers", "embedding"]) == 2
    err = capsys.readouterr().err
    assert case.message in err and "Traceback" not in err
    assert snapshot(session_cache) == before


def test_odd_images_load_correctly(corpus):
    for case in [c for c in CASES if c.kind == "image" and c.expect == "ok"]:
        img = load_image(corpus[case.name])
        assert img.mode == "RGB" and max(img.size) <= MAX_SIDE, case.name
    upright = np.asarray(load_image(corpus["exif_rotated_jpeg"]))
    assert upright.shape[:2] == (60, 30)  # stored 60×30 landscape, EXIF says rotate: displayed portrait
    assert upright[5, 15, 2] > 150 and upright[55, 15, 0] > 150  # blue half on top after rotation, red below
    for name in ("animated_gif", "animated_webp"):
        pixel = np.asarray(load_image(corpus[name]), np.int32)[20, 20]
        assert pixel[0] > 200 and pixel[1] < 50 and pixel[2] < 50, name  # the first (red) frame
    palette = np.asarray(load_image(corpus["palette_png_transparency"]), np.int32)
    assert palette[15, 5].tolist() == [255, 255, 255] and palette[15, 35].tolist() == [0, 0, 255]  # transparent → white
    assert np.asarray(load_image(corpus["rgba_png"])).mean() > 250  # fully transparent → white
    assert load_image(corpus["huge_20000px_jpeg"]).size == (MAX_SIDE, MAX_SIDE)


def test_huge_jpeg_is_decoded_in_bounded_memory(corpus):
    # VmHWM (peak RSS of this exec'd process); ru_maxrss would include the parent's peak from before the fork.
    code = ("import re, sys; sys.path.insert(0, sys.argv[1]); from cnnviz.data.images import load_image; "
            "img = load_image(sys.argv[2]); "
            "print(img.size[0], re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT), str(corpus["huge_20000px_jpeg"])],
                         capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) == MAX_SIDE
    assert int(out[1]) < 400_000  # KiB: a full 20000² decode would need 400 MB for the pixels alone


def test_odd_images_predict_in_the_cli(corpus, capsys):
    paths = [str(corpus[c.name]) for c in CASES if c.kind == "image" and c.expect == "ok"]
    assert main(["predict", *paths, "--model", MODEL, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["predictions"]) == len(paths)


def _search(capsys, folder: Path, query: str) -> dict:
    code = main(["search", "--images", str(folder), "--model", MODEL, "--query", query, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_odd_folders(corpus, capsys):
    assert list(open_dataset(corpus["folder_empty_class"]).classes) == ["cats"]
    mixed = open_dataset(corpus["folder_non_images_mixed"])
    assert len(mixed.items) == 2 and any("readme.txt" in s for s in mixed.skipped) and any("model.pkl" in s for s in mixed.skipped)
    linked = open_dataset(corpus["folder_symlink_outside"])
    assert [i.id for i in linked.items] == ["cats/a.png", "cats/b.png"] and any("outside" in s for s in linked.skipped)
    assert _search(capsys, corpus["folder_single_image"], "only/a.png")["results"] == []
    hits = _search(capsys, corpus["folder_unicode_and_spaces"], "chats blancs/été 1.png")["results"]
    assert {h["id"] for h in hits} == {"chats blancs/猫 2.png", "dogs/a b.png"}
    dup = _search(capsys, corpus["folder_duplicates"], "x/a.png")["results"][0]
    assert dup["id"] == "x/a copy.png" and dup["distance"] < 1e-5


def test_bad_uploads_in_the_ui_keep_the_page_usable(corpus):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/attribution.py").run()
    at.multiselect(key="attr.methods").set_value(["gradcam"]).run()
    at.radio(key="attr.source").set_value("Upload").run()
    allowed = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}  # the uploader itself refuses other types (.svg, .heic)
    for case in [c for c in CASES if c.kind == "image" and c.expect == "error" and corpus[c.name].suffix in allowed]:
        path = corpus[case.name]
        at.file_uploader(key="attr.upload").set_value((path.name, path.read_bytes(), "image/png")).run()
        assert not at.exception, case.name
        assert any(case.message in e.value for e in at.error), case.name
    good = corpus["exif_rotated_jpeg"]
    at.file_uploader(key="attr.upload").set_value((good.name, good.read_bytes(), "image/jpeg")).run()
    assert not at.exception and not at.error
    assert at.multiselect(key="attr.methods").value == ["gradcam"]  # the user's choices survived the bad files


def test_file_size_limit_applies_to_the_cli(corpus, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("CNNVIZ_MAX_FILE_MB", "1")
    assert main(["predict", str(corpus["huge_20000px_jpeg"]), "--model", MODEL]) == 2  # 4.5 MB
    assert "over the 1 MB file limit" in capsys.readouterr().err
    big_zip = tmp_path / "big.zip"
    big_zip.write_bytes(b"PK" + b"\0" * 2 * 1024**2)
    assert main(["precompute", "--images", str(big_zip), "--model", MODEL]) == 2
    assert "over the 1 MB archive limit" in capsys.readouterr().err
    assert main(["predict", str(corpus["grayscale"]), "--model", MODEL]) == 0  # small files still pass
