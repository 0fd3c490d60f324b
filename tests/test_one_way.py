"""One way to do each thing: datasets, progress, image encoding, upload types, CLI → workflows,
and Streamlit caches that follow a dataset's content (issue #17)."""

from __future__ import annotations

import ast
import io
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz import workflows
from cnnviz.cli import main
from cnnviz.errors import DatasetError
from conftest import write_image

PACKAGE = Path(__file__).resolve().parent.parent / "cnnviz"


def test_one_public_dataset_opener():
    import cnnviz.data as data
    from cnnviz.data import open_dataset

    for gone in ("load_dataset", "open_images", "resolve_dataset"):
        assert not hasattr(data, gone) and not hasattr(data.registry, gone)
    assert open_dataset("stamps").name == "stamps"
    assert open_dataset(images=data.registry.SAMPLES_DIR / "fashion").name == "fashion"
    with pytest.raises(DatasetError, match="exactly one"):
        open_dataset("stamps", images="x")


def test_progress_is_one_type_defined_once():
    from cnnviz.progress import Progress

    definers = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "Progress" for t in node.targets):
                definers.append(path.relative_to(PACKAGE).as_posix())
    assert definers == ["progress.py"]
    from cnnviz import ann, benchmark, features
    from cnnviz.attribution import base
    from cnnviz.ui import jobs

    assert all(m.Progress is Progress for m in (ann, benchmark, features, base, jobs, workflows))


def test_benchmark_progress_has_the_common_signature(monkeypatch):
    """It alone took (done, total, name); now every progress is (done, total)."""
    from cnnviz import benchmark

    monkeypatch.setattr(benchmark, "benchmark_model", lambda name, *a: benchmark.BenchmarkRow(
        **{f.name: None for f in benchmark.fields(benchmark.BenchmarkRow)} | {"model": name}))
    seen = []
    benchmark.run_benchmark(["mobilenet_v2", "vgg16"], None, use_cache=False, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(0, 2), (1, 2), (2, 2)]


def test_one_image_encoder():
    from cnnviz.data.images import encode_image

    arr = np.zeros((8, 6, 3), np.float32)
    arr[..., 0] = 300.0  # clipped, not wrapped
    png = Image.open(io.BytesIO(encode_image(arr)))
    assert png.format == "PNG" and png.size == (6, 8) and png.getpixel((0, 0)) == (255, 0, 0)
    jpeg = Image.open(io.BytesIO(encode_image(Image.new("RGBA", (5, 5)), "JPEG")))
    assert jpeg.format == "JPEG"
    encoders = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
                if 'format="PNG"' in p.read_text() or 'format="JPEG"' in p.read_text()]
    assert "data/images.py" in encoders
    for mine in ("featureviz.py", "ui/cached.py", "ui/attributions.py", "attribution/render.py"):
        assert mine not in encoders


def test_upload_types_are_what_the_loader_reads():
    from cnnviz.data.images import IMAGE_EXTENSIONS, UPLOAD_TYPES

    assert {"." + t for t in UPLOAD_TYPES} == set(IMAGE_EXTENSIONS) and {"tif", "tiff"} <= set(UPLOAD_TYPES)
    pages = Path(__file__).resolve().parent.parent / "app_pages"
    for page in ("search.py", "attribution.py"):
        text = (pages / page).read_text()
        assert "type=list(UPLOAD_TYPES)" in text and '"gif"]' not in text


def test_explorer_channel_count_defined_once():
    from cnnviz.featureviz import EXPLORER_CHANNELS, evenly_spaced_channels

    assert len(evenly_spaced_channels(1280)) == EXPLORER_CHANNELS
    explorer = (Path(__file__).resolve().parent.parent / "app_pages" / "explorer.py").read_text()
    assert ", 30)" not in explorer


@pytest.mark.parametrize("argv, name", [
    (["benchmark", "--models", "mobilenet_v2", "--dataset", "stamps"], "benchmark"),
    (["bench-search", "--n", "100", "--dim", "8"], "bench_search"),
    (["cache", "info"], "cache_info"),
    (["cache", "clear", "--kind", "features"], "clear_cache"),
])
def test_cli_commands_go_through_workflows(monkeypatch, capsys, argv, name):
    calls = []
    answers = {"benchmark": {"device": "d", "date": "t", "dataset": "stamps", "versions": {}, "rows": []},
               "bench_search": {"n": 1, "dim": 1, "exact_ms": 1.0, "ann_ms": 1.0, "recall_at_15": 1.0, "build_s": 0.0,
                                "memory_mb": 0.0, "index": "x", "queries": 1, "machine": "m", "data": "d"},
               "cache_info": {"root": "r", "kinds": {}, "total_bytes": 0, "max_bytes": None, "used_fraction": None},
               "clear_cache": []}
    monkeypatch.setattr(workflows, name, lambda *a, **k: calls.append((a, k)) or answers[name])
    assert main(argv + ["--json"]) == 0
    assert len(calls) == 1
    if name == "benchmark":
        assert calls[0][0][:2] == ("mobilenet_v2", "stamps")


def test_streamlit_dataset_cache_follows_the_folder(tmp_path):
    """A folder that changes used to stay stale until the server restarted (cache keyed by path only)."""
    from cnnviz.data import dataset_fingerprint
    from cnnviz.ui import cached

    root = tmp_path / "ds"
    for cls, color in (("red", (220, 10, 10)), ("blue", (10, 10, 220))):
        for i in range(2):
            write_image(root / cls / f"{i}.png", color=color)
    ref = str(root)
    fp = dataset_fingerprint(ref)
    assert dataset_fingerprint(ref) == fp  # stable while nothing changes
    first, digest = cached.dataset(ref), cached.dataset_digest(ref)
    assert cached.dataset(ref) is first and len(first.items) == 4
    write_image(root / "blue" / "2.png", color=(0, 0, 255))
    assert dataset_fingerprint(ref) != fp
    assert len(cached.dataset(ref).items) == 5 and cached.dataset_digest(ref) != digest
    # Replaced content under the same name (written beside it, then renamed in: how tools save) is seen too.
    digest = cached.dataset_digest(ref)
    write_image(tmp_path / "new.png", color=(0, 255, 0))
    shutil.move(tmp_path / "new.png", root / "red" / "0.png")
    assert cached.dataset_digest(ref) != digest


def test_streamlit_features_are_keyed_by_content(tmp_path, monkeypatch):
    from cnnviz.ui import cached

    root = tmp_path / "ds"
    for i in range(3):
        write_image(root / "a" / f"{i}.png", color=(i * 60, 0, 0))
    extracted = []

    def fake_extract(loaded, ds, layers, pooling, progress=None):
        extracted.append(len(ds.items))
        return {"avg_pool": np.zeros((len(ds.items), 2), np.float32)}

    monkeypatch.setattr(cached, "extract_features", fake_extract)
    monkeypatch.setattr(cached, "model", lambda name: None)
    assert cached.features("m", str(root), "avg_pool").shape == (3, 2)
    assert cached.features("m", str(root), "avg_pool").shape == (3, 2) and extracted == [3]  # cached
    write_image(root / "a" / "3.png")
    assert cached.features("m", str(root), "avg_pool").shape == (4, 2) and extracted == [3, 4]


def test_console_script_is_declared():
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["cnnviz"] == "cnnviz.cli:main"
    script = Path(sys.executable).parent / "cnnviz"
    if script.exists():  # installed by make setup (pip install -e .)
        import subprocess

        out = subprocess.run([str(script), "datasets", "--json"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and '"stamps"' in out.stdout


def test_every_imported_library_is_pinned():
    """scikit-learn was imported but not pinned; h5py is now read directly too."""
    import importlib.metadata as md
    import re

    root = PACKAGE.parent
    pinned = set()
    for name in ("requirements.txt", "requirements-dev.txt", "requirements-nodeps.txt"):
        for line in (root / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                pinned.add(re.split(r"[=<>\[ ;]", line)[0].lower().replace("_", "-"))
    owners = md.packages_distributions()
    imported = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    unpinned = {m for m in imported - set(sys.stdlib_module_names) - {"cnnviz"}
                if not {d.lower().replace("_", "-") for d in owners.get(m, [m])} & pinned}
    assert not unpinned, f"imported but not pinned in requirements*.txt: {sorted(unpinned)}"


def test_pca_map_is_scikit_learns_pca():
    from sklearn.decomposition import PCA

    from cnnviz.projection import pca_2d

    x = np.random.default_rng(0).normal(size=(200, 12)).astype(np.float32) * np.arange(1, 13, dtype=np.float32)
    ours = pca_2d(x)
    ref = PCA(2, svd_solver="full").fit_transform(x.astype(np.float64))
    np.testing.assert_allclose(np.abs(ours), np.abs(ref), atol=1e-4)


def test_explorer_overlay_is_the_attribution_colormap_blend():
    """The feature-visualisation overlay had its own hand-made colour ramp beside render.colorize."""
    from cnnviz.attribution.render import blend
    from cnnviz.featureviz import overlay

    image = np.full((4, 4, 3), 120, np.float32)
    heat = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_array_equal(overlay(image, heat), blend(image, heat, 0.5, "viridis"))
