"""Cache integrity under kills and races, and several users at once.

Four concurrent sessions are driven through real browser pages in tests/test_browser.py
(AppTest instances run from threads race inside the AppTest harness itself).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
MODEL = "efficientnet_lite0"

# Extract the embedding of a sample set into the cache given by CNNVIZ_CACHE_DIR and save it to argv[1].
EXTRACT = (f"import sys, numpy as np; sys.path.insert(0, {str(ROOT)!r}); "
           "from cnnviz.data import open_dataset; from cnnviz.features import extract_features; "
           "from cnnviz.workflows import get_model; "
           f"f = extract_features(get_model({MODEL!r}), open_dataset('stamps'), 'embedding', chunk_size=16); "
           "np.save(sys.argv[1], np.asarray(f['avg_pool']))")


def open_upload_tab(at):
    """The Search page's uploader lives in a lazy tab: open it (as a click on the tab would)."""
    at.session_state["search.query_source"] = "Upload an image"
    return at.run()


def _env(cache_dir: Path) -> dict:
    return {**os.environ, "CNNVIZ_CACHE_DIR": str(cache_dir), "CNNVIZ_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def _seed_weights(cache_dir: Path, session_cache: Path) -> None:
    """Reuse the session's converted weights so subprocesses spend their time on features."""
    import shutil

    from cnnviz.workflows import get_model

    get_model(MODEL)  # converts the weights into the session cache if no test has yet
    shutil.copytree(session_cache / "weights", cache_dir / "weights", dirs_exist_ok=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, session_cache) -> np.ndarray:
    cache_dir = tmp_path_factory.mktemp("reference-cache")
    _seed_weights(cache_dir, session_cache)
    out = cache_dir / "ref.npy"
    subprocess.run([sys.executable, "-c", EXTRACT, str(out)], env=_env(cache_dir), check=True, capture_output=True)
    return np.load(out)


def test_killed_precompute_leaves_nothing_read_as_valid_and_resumes(tmp_path, session_cache, reference, monkeypatch):
    from cnnviz import cache

    _seed_weights(tmp_path, session_cache)
    proc = subprocess.Popen([sys.executable, "-m", "cnnviz", "precompute", "--dataset", "stamps", "--model", MODEL,
                             "--layers", "embedding", "--chunk-size", "16"], cwd=ROOT, env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and not list(tmp_path.glob("feature-chunks/*/*.npz")):
        time.sleep(0.05)
    assert proc.poll() is None, "precompute finished before it could be killed"
    time.sleep(0.3)  # let it get into the middle of writing the next chunk
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(tmp_path.glob("features/*.npy"))  # no final matrix from a killed run
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    (chunk_dir,) = (tmp_path / "feature-chunks").iterdir()
    kind = f"feature-chunks/{chunk_dir.name}"
    for npz in chunk_dir.glob("*.npz"):  # every chunk left behind is complete (or, without its sidecar, ignored)
        assert cache.load_arrays(kind, npz.stem) is not None or not cache.has_arrays(kind, npz.stem)
    monkeypatch.undo()
    out = tmp_path / "resumed.npy"
    subprocess.run([sys.executable, "-c", EXTRACT, str(out)], env=_env(tmp_path), check=True, capture_output=True)
    np.testing.assert_allclose(np.load(out), reference, rtol=1e-5, atol=1e-6)


def test_two_processes_precomputing_the_same_key_agree(tmp_path, session_cache, reference):
    _seed_weights(tmp_path, session_cache)
    outs = [tmp_path / f"p{i}.npy" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", EXTRACT, str(o)], env=_env(tmp_path), stderr=subprocess.PIPE)
             for o in outs]
    for p in procs:
        _, err = p.communicate(timeout=400)
        assert p.returncode == 0, err.decode()[-2000:]
    a, b = (np.load(o) for o in outs)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, reference, rtol=1e-5, atol=1e-6)
    assert len(list(tmp_path.glob("features/*.npy"))) == 1 and not list(tmp_path.glob("features/.tmp-*"))


def test_uploads_stay_in_their_session_and_out_of_the_dataset(photos):
    from streamlit.testing.v1 import AppTest

    a, b = (AppTest.from_file(APP, default_timeout=300) for _ in range(2))
    for at in (a, b):
        at.run()
        at.switch_page("app_pages/search.py").run()
    open_upload_tab(a).file_uploader(key="search.upload").set_value(("coffee.jpg", photos["coffee"].read_bytes(), "image/jpeg")).run()
    b.run()
    assert a.session_state["cnnviz.query_upload"][0] == "coffee.jpg"
    assert b.session_state["cnnviz.query_upload"] is None
    assert any("Results for coffee.jpg" in s.value for s in a.subheader)
    assert not any("coffee" in s.value for s in b.subheader)
    from cnnviz.data import open_dataset

    assert "coffee.jpg" not in " ".join(open_dataset("stamps").ids)
