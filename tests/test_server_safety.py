"""A server safe to expose: allowed data roots, guarded cache deletes, quota and expiry, bounded jobs, zips.

Every test points the cache and the roots at tmp_path. Where code could escape (``..``, ``/``, absolute
paths, symlinks), the delete functions are patched to fail the test, so validation must refuse the
path before any filesystem call; ``cache clear --kind /`` is never run unpatched.
"""

from __future__ import annotations

import errno
import gc
import os
import shutil
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cnnviz import cache
from cnnviz.cli import main
from cnnviz.data import extract_zip, open_dataset
from cnnviz.data import uploads
from cnnviz.data.roots import HOW_TO_ADD_ROOTS, folders_under_roots, resolve_in_roots
from cnnviz.errors import DatasetError
from cnnviz.ui.jobs import JobPool
from conftest import SAMPLES, write_image


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): (p.lstat().st_size if not p.is_dir() or p.is_symlink() else -1)
            for p in sorted(root.rglob("*"))}


def forbid_deletes(monkeypatch) -> None:
    """Any delete now fails the test (pytest's Failed is a BaseException: no `except Exception` hides it)."""
    def boom(*args, **kwargs):
        pytest.fail(f"a delete was attempted: {args}")
    for mod, name in ((shutil, "rmtree"), (os, "remove"), (os, "unlink"), (os, "rmdir"), (Path, "unlink"), (Path, "rmdir")):
        monkeypatch.setattr(mod, name, boom)


# --- cache clear --kind and safe_remove ------------------------------------------------------------------

@pytest.fixture
def nested_cache(tmp_path, monkeypatch) -> Path:
    """tmp/outer/middle/cache with entries, and canary files in every folder above it."""
    root = tmp_path / "outer" / "middle" / "cache"
    for kind in ("features", "attribution"):
        (root / kind).mkdir(parents=True)
        (root / kind / "k.npy").write_bytes(b"x" * 100)
    (root / ".gitkeep").write_text("")
    (tmp_path / "outer" / "middle" / "canary.txt").write_text("keep me")
    (tmp_path / "outer" / "canary.txt").write_text("keep me")
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(root))
    return root


@pytest.mark.parametrize("kind", ["..", "../..", "/", "/etc", "/tmp", "ABS_CACHE", "ABS_OUTER", "features/../..",
                                  "features/..", "", ".", "nonsense"])
def test_cache_clear_refuses_bad_kinds_before_any_delete(kind, nested_cache, tmp_path, monkeypatch, capsys):
    kind = {"ABS_CACHE": str(nested_cache / "features"), "ABS_OUTER": str(tmp_path / "outer")}.get(kind, kind)
    before = snapshot(tmp_path)
    forbid_deletes(monkeypatch)
    assert main(["cache", "clear", "--kind", kind]) == 2
    err = capsys.readouterr().err
    assert "unknown cache kind" in err and "features" in err and "Traceback" not in err
    assert snapshot(tmp_path) == before


def test_cache_clear_kind_lists_and_removes_only_that_kind(nested_cache, tmp_path, capsys):
    assert main(["cache", "clear", "--kind", "features", "--json"]) == 0
    import json

    removed = json.loads(capsys.readouterr().out)["removed"]
    assert removed == [{"path": str(nested_cache / "features"), "files": 1, "bytes": 100}]
    assert not (nested_cache / "features").exists() and (nested_cache / "attribution" / "k.npy").exists()
    assert main(["cache", "clear"]) == 0
    out = capsys.readouterr().out
    assert str(nested_cache / "attribution") in out
    assert [p.name for p in nested_cache.iterdir()] == [".gitkeep"]
    assert (tmp_path / "outer" / "canary.txt").exists() and (tmp_path / "outer" / "middle" / "canary.txt").exists()


def test_symlinked_kind_removes_the_link_never_its_target(nested_cache, tmp_path, capsys):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data.bin").write_bytes(b"1" * 10)
    shutil.rmtree(nested_cache / "features")
    (nested_cache / "features").symlink_to(outside, target_is_directory=True)
    (nested_cache / "attribution" / "link.npy").symlink_to(outside / "data.bin")
    assert main(["cache", "clear", "--kind", "features"]) == 0
    assert not (nested_cache / "features").is_symlink() and (outside / "data.bin").read_bytes() == b"1" * 10
    cache.safe_remove(nested_cache / "attribution" / "link.npy")
    assert (outside / "data.bin").exists() and not (nested_cache / "attribution" / "link.npy").is_symlink()


def test_safe_remove_refuses_paths_outside_the_cache(nested_cache, tmp_path, monkeypatch):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data.bin").write_text("keep")
    (nested_cache / "out").symlink_to(outside, target_is_directory=True)
    before = snapshot(tmp_path)
    forbid_deletes(monkeypatch)
    for bad in ("/", "/etc", str(tmp_path), str(nested_cache), str(nested_cache / ".."), str(nested_cache / "features/../.."),
                str(outside / "data.bin"), str(nested_cache / "out" / "data.bin"), "features", "../x"):
        with pytest.raises(cache.CacheError, match="refusing to delete"):
            cache.safe_remove(bad)
    assert snapshot(tmp_path) == before


# --- quota: LRU eviction, in-use entries, full disk ----------------------------------------------------

def _entry(key: str, kb: int = 100) -> None:
    cache.save_arrays("attribution", key, {"a": np.full(kb * 256, 1, np.float32)}, {})


def _age(kind: str, key: str, seconds_ago: float) -> None:
    t = time.time() - seconds_ago
    for p in (cache.cache_root() / kind).glob(f"{key}.*"):
        os.utime(p, (t, t))


def test_quota_evicts_least_recently_used_first(isolated_cache, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_GRACE_S", "0")
    for n, key in enumerate("abc"):
        _entry(key)
        _age("attribution", key, 300 - 100 * n)  # a oldest, c newest
    assert cache.load_arrays("attribution", "a") is not None  # a read: now the most recently used
    size = cache.usage_bytes()
    monkeypatch.setenv("CNNVIZ_CACHE_MAX_GB", str(size * 1.2 / 1e9))  # room for 3.6 entries
    present = lambda: sorted(p.stem for p in (isolated_cache / "attribution").glob("*.npz"))  # noqa: E731
    _entry("d")
    assert present() == ["a", "c", "d"]  # b (least recently used) went first
    _age("attribution", "d", 50)
    _entry("e")
    assert present() == ["a", "d", "e"]  # then c
    info = cache.cache_info()
    assert info["max_bytes"] == int(size * 1.2) and info["total_bytes"] <= info["max_bytes"]


def test_quota_never_evicts_an_entry_in_use(isolated_cache, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_GRACE_S", "0")
    with cache.writing_matrix("features", "held", (1000, 100), {}) as out:
        out[:] = 1.0
    _age("features", "held", 1000)
    held = cache.load_matrix("features", "held")[10:20]  # a view keeps the memory map (and the entry) in use
    _age("features", "held", 1000)
    monkeypatch.setenv("CNNVIZ_CACHE_MAX_GB", str(cache.usage_bytes() * 1.5 / 1e9))
    with pytest.raises(cache.CacheFullError, match="quota is full.*in use"):
        _entry("new", kb=400)
    assert (isolated_cache / "features" / "held.npy").exists() and float(held.sum()) == 1000.0
    assert not list((isolated_cache / "attribution").iterdir())  # the refused entry left nothing, not even a temp
    del held
    gc.collect()
    _entry("new", kb=400)  # no longer in use: evicted to make room
    assert not (isolated_cache / "features" / "held.npy").exists()
    assert cache.load_arrays("attribution", "new") is not None


def test_quota_checked_before_a_large_matrix_is_written(isolated_cache, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_MAX_GB", "0.000001")  # 1 kB
    with pytest.raises(cache.CacheFullError, match="CNNVIZ_CACHE_MAX_GB"):
        with cache.writing_matrix("features", "big", (100, 100), {}):
            pytest.fail("the body must not run when the quota cannot hold the matrix")
    assert not list((isolated_cache / "features").iterdir())


@pytest.mark.parametrize("where", ["data", "sidecar"])
def test_full_disk_mid_write_leaves_no_partial_entry(where, isolated_cache, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "data":
        real = np.savez

        def half_then_full(f, **arrays):
            real(f, **arrays)  # bytes on disk, then the device fills up
            full()
        monkeypatch.setattr(np, "savez", half_then_full)
    else:
        monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(cache.CacheFullError, match="disk is full"):
        _entry("k")
    assert not list((isolated_cache / "attribution").iterdir())
    monkeypatch.undo()
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(isolated_cache))
    assert cache.load_arrays("attribution", "k") is None
    _entry("k")
    assert cache.load_arrays("attribution", "k") is not None


# --- uploads: per-session limits and expiry ------------------------------------------------------------

def _zip_bytes(tmp_path: Path, name: str, n: int = 2) -> bytes:
    path = tmp_path / f"{name}.zip"
    with zipfile.ZipFile(path, "w") as z:
        for i in range(n):
            img = write_image(tmp_path / name / f"c{i}" / "a.png", color=(10 * i, 200, len(name) * 9))
            z.write(img, f"c{i}/a.png")
    return path.read_bytes()


def test_session_upload_limits(isolated_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_UPLOAD_MAX_COUNT", "2")
    session = uploads.SessionUploads()
    a, b, c = (_zip_bytes(tmp_path, n) for n in ("a", "bb", "ccc"))
    uploads.store_upload(a, "a.zip", session=session)
    uploads.store_upload(a, "a.zip", session=session)  # the same file again counts once
    uploads.store_upload(b, "b.zip", session=session)
    with pytest.raises(DatasetError, match="already uploaded 2 datasets.*CNNVIZ_UPLOAD_MAX_COUNT"):
        uploads.store_upload(c, "c.zip", session=session)
    assert len(list((isolated_cache / "uploads").iterdir())) == 2
    monkeypatch.setenv("CNNVIZ_UPLOAD_MAX_COUNT", "10")
    monkeypatch.setenv("CNNVIZ_UPLOAD_MAX_MB", str((len(a) + len(b) + len(c) - 1) / 1024**2))
    with pytest.raises(DatasetError, match="exceed this session's upload limit"):
        uploads.store_upload(c, "c.zip", session=session)
    assert uploads.store_upload(c, "c.zip", session=uploads.SessionUploads()).exists()  # another session may


def test_idle_uploads_expire_through_the_guarded_delete(isolated_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_UPLOAD_TTL_HOURS", "1")
    old, fresh = (uploads.store_upload(_zip_bytes(tmp_path, n), f"{n}.zip") for n in ("old", "fresh"))
    for z in (old, fresh):
        assert len(open_dataset(z).items) == 2  # extracted into datasets/
    t = time.time() - 2 * 3600
    for p in [old, *(isolated_cache / "datasets").glob(old.name[:24])]:
        os.utime(p, (t, t))
    removed_paths = []
    real = cache.safe_remove
    monkeypatch.setattr(cache, "safe_remove", lambda p: removed_paths.append(str(p)) or real(p))
    removed = uploads.expire_uploads()
    assert sorted(removed) == sorted(removed_paths) == sorted([str(old), str(isolated_cache / "datasets" / old.name[:24])])
    assert not old.exists() and fresh.exists() and (isolated_cache / "datasets" / fresh.name[:24]).is_dir()
    uploads.touch_upload(fresh)
    monkeypatch.setenv("CNNVIZ_UPLOAD_TTL_HOURS", "0")  # 0: never expire
    assert uploads.expire_uploads(now=time.time() + 10**7) == []


# --- zips: unique temp folders, clashes, encryption ------------------------------------------------------

def test_concurrent_extractions_use_their_own_temp_folders(isolated_cache, tmp_path, monkeypatch):
    import tempfile

    archive = tmp_path / "set.zip"
    archive.write_bytes(_zip_bytes(tmp_path, "set", n=3))
    made, real = [], tempfile.mkdtemp
    barrier = threading.Barrier(3)

    def recording_mkdtemp(*args, **kwargs):
        path = real(*args, **kwargs)
        made.append(path)
        barrier.wait(timeout=10)  # all three extractions hold a temp folder at the same time
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)
    dest = cache.entry_dir("datasets")
    results, errors = [], []
    threads = [threading.Thread(target=lambda: _collect(results, errors, archive, dest)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(set(made)) == 3 and len(set(results)) == 1
    assert sorted(p.name for p in Path(results[0]).rglob("*.png")) == ["a.png"] * 3
    assert not [p for p in dest.iterdir() if p.name.startswith(".tmp-")]


def _collect(results: list, errors: list, archive: Path, dest: Path) -> None:
    try:
        results.append(str(extract_zip(archive, dest)))
    except Exception as exc:  # reported by the test
        errors.append(exc)


# --- bounded job pool --------------------------------------------------------------------------------------

def test_job_pool_runs_at_most_max_jobs_and_merges_duplicates(monkeypatch):
    monkeypatch.setenv("CNNVIZ_MAX_JOBS", "2")
    pool = JobPool()
    assert pool.workers == 2
    gate, lock = threading.Event(), threading.Lock()
    running, peak, runs = [0], [0], {}

    def work_for(key):
        def work(progress):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
                runs[key] = runs.get(key, 0) + 1
            gate.wait(10)
            time.sleep(0.02)
            progress(1, 1)
            with lock:
                running[0] -= 1
            return key
        return work

    jobs = [pool.submit(k, f"job{k}", work_for(k)) for k in range(10)]
    dupes = [pool.submit(k, f"again{k}", work_for(k)) for k in (0, 5, 9)]
    assert [d is jobs[k] for d, k in zip(dupes, (0, 5, 9))] == [True] * 3
    deadline = time.time() + 10
    while running[0] < 2 and time.time() < deadline:
        time.sleep(0.01)
    assert [j.position for j in jobs] == [None, None, 0, 1, 2, 3, 4, 5, 6, 7]
    assert jobs[9].status().startswith("queued, 7 jobs ahead") and jobs[0].status() == "running: 0/1"
    gate.set()
    assert all(j.wait(20) for j in jobs)
    assert peak[0] == 2 and runs == {k: 1 for k in range(10)}
    assert [j.result for j in jobs] == list(range(10)) and all(j.fraction == 1.0 and j.position is None for j in jobs)
    pool.shutdown()


def test_failed_job_keeps_its_error_and_a_resubmit_retries():
    pool = JobPool(workers=1)

    def broken(progress):
        raise ValueError("the model exploded")

    job = pool.submit("k", "broken", broken)
    assert job.wait(10) and job.finished
    assert job.error == "ValueError: the model exploded" and job.status() == "failed: ValueError: the model exploded"
    retry = pool.submit("k", "fixed", lambda progress: 42)
    assert retry is not job and retry.wait(10) and retry.result == 42 and retry.error is None
    pool.shutdown()


# --- allowed data roots in the dashboard -----------------------------------------------------------------

def _sidebar_app():
    import streamlit as st

    from cnnviz.data import DEFAULT_DATASET, list_datasets
    from cnnviz.models import DEFAULT_MODEL
    from cnnviz.ui import sidebar, state

    state.init_defaults(DEFAULT_DATASET, DEFAULT_MODEL)
    # Test hooks: a dataset reference arriving from outside the sidebar (as a URL parameter or a stale
    # session would set it before the sidebar runs), and a forged folder reaching the Open-folder path.
    if forced := st.session_state.pop("test.force_dataset", None):
        st.session_state[state.DATASET] = forced
    if forged := st.session_state.pop("test.forge_pick", None):
        sidebar.open_folder(forged)
    sidebar.dataset_and_model(list_datasets())
    st.write(f"dataset={st.session_state[state.DATASET]}")


@pytest.fixture
def roots(tmp_path, monkeypatch) -> Path:
    """ROOT with two image folders, a folder outside it and a symlink from ROOT leading out."""
    root = tmp_path / "data" / "root"
    for cls in ("birds", "fruit"):
        for src in sorted((SAMPLES / "stamps" / cls).iterdir())[:2]:
            (root / "stamps" / cls).mkdir(parents=True, exist_ok=True)
            shutil.copy(src, root / "stamps" / cls / src.name)
    (root / "flat").mkdir()
    shutil.copy(next((SAMPLES / "stamps" / "birds").iterdir()), root / "flat" / "one.jpg")
    outside = tmp_path / "data" / "secret"
    write_image(outside / "x" / "private.png")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    monkeypatch.setenv("CNNVIZ_DATA_ROOTS", str(root))
    (tmp_path / "cache").mkdir()
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    return root


def _bad_refs(root: Path) -> list[str]:
    return ["/", "/etc", f"{root}/../..", f"{root}/escape", f"{root}/escape/x", "../secret", str(root.parent / "secret")]


def test_resolve_in_roots_refuses_outside_paths(roots):
    assert resolve_in_roots(roots / "stamps") == roots / "stamps" and resolve_in_roots("flat") == roots / "flat"
    for bad in _bad_refs(roots):
        with pytest.raises(DatasetError, match="outside the folders this server allows"):
            resolve_in_roots(bad)
    listed = folders_under_roots()
    assert roots / "stamps" / "birds" in listed and not [p for p in listed if "escape" in str(p) or "secret" in str(p)]


def _app():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_sidebar_app, default_timeout=120)
    at.run()
    assert not at.exception
    assert not at.file_uploader  # "Add a dataset" is lazy: nothing of it is drawn while it is closed
    at.session_state["cnnviz.add_dataset"] = True  # open it, as a click on it would
    at.run()
    assert not at.exception and at.file_uploader
    return at


def test_sidebar_offers_only_folders_under_the_roots_and_opens_them(roots):
    at = _app()
    assert not at.text_input  # no free path box
    options = at.selectbox(key="cnnviz.folder_pick").options
    assert str(roots) in options and str(roots / "stamps" / "birds") in options
    assert not [o for o in options if "escape" in o or "secret" in o or o in ("/", "/etc")]
    at.selectbox(key="cnnviz.folder_pick").set_value(str(roots / "stamps")).run()
    next(b for b in at.button if b.label == "Open folder").click().run()
    assert not at.exception and not at.error
    assert at.selectbox(key="cnnviz.dataset").value == str(roots / "stamps")


@pytest.mark.parametrize("how", ["dataset", "picker"])
def test_folders_outside_the_roots_are_refused_and_change_nothing(how, roots, tmp_path, monkeypatch):
    at = _app()
    opened = []
    import cnnviz.ui.sidebar as sidebar

    monkeypatch.setattr(sidebar, "open_dataset", lambda p: opened.append(p) or pytest.fail(f"opened {p}"))
    forbid_deletes(monkeypatch)
    before = snapshot(tmp_path)
    for bad in _bad_refs(roots):
        at.session_state["test.force_dataset" if how == "dataset" else "test.forge_pick"] = bad
        at.run()
        assert not at.exception, bad
        assert any("outside the folders this server allows" in e.value for e in at.error), bad
        assert at.selectbox(key="cnnviz.dataset").value == "stamps" and at.session_state["cnnviz.custom_datasets"] == {}
    assert opened == [] and snapshot(tmp_path) == before


def test_without_roots_only_samples_and_zip_upload(tmp_path, monkeypatch, tiny_folder):
    monkeypatch.delenv("CNNVIZ_DATA_ROOTS", raising=False)
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    at = _app()
    assert not at.text_input and not [s for s in at.selectbox if s.key == "cnnviz.folder_pick"]
    assert any(HOW_TO_ADD_ROOTS in i.value for i in at.info)
    assert at.get("file_uploader")  # zip upload still offered
    at.session_state["test.force_dataset"] = str(tiny_folder)
    at.run()
    assert any("Server folders are off" in e.value for e in at.error)
    assert at.selectbox(key="cnnviz.dataset").value == "stamps"


def test_zip_with_clashing_names_is_a_message_in_the_sidebar(tmp_path, monkeypatch):
    from bad_inputs import CASES

    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    at = _app()
    for name in ("zip_file_and_folder_same_name", "zip_duplicate_names", "zip_encrypted"):
        case = next(c for c in CASES if c.name == name)
        data = case.make(tmp_path / name).read_bytes()
        at.file_uploader(key="cnnviz.zip_upload").set_value((f"{name}.zip", data, "application/zip")).run()
        assert not at.exception, name
        assert any(case.message in e.value and "nothing was extracted" in e.value for e in at.error), name
        assert at.selectbox(key="cnnviz.dataset").value == "stamps"
    assert not list((tmp_path / "cache" / "datasets").glob("*"))


# --- login configuration -------------------------------------------------------------------------------------

def test_login_providers_from_the_auth_section():
    from cnnviz.ui.auth import providers

    assert providers({"redirect_uri": "https://x/oauth2callback", "cookie_secret": "s", "client_id": "id",
                      "client_secret": "c", "server_metadata_url": "https://idp/.well-known/openid-configuration"}) == [None]
    assert providers({"redirect_uri": "https://x/oauth2callback", "cookie_secret": "s",
                      "google": {"client_id": "a"}, "okta": {"client_id": "b"}}) == ["google", "okta"]


def test_an_abandoned_running_job_frees_its_worker_for_a_waiting_one(monkeypatch):
    monkeypatch.setenv("CNNVIZ_JOB_ABANDON_S", "0.3")
    pool = JobPool(workers=1)

    def long(progress):
        for i in range(200):  # 10 s unless stopped
            time.sleep(0.05)
            progress(i, 200)
        return "finished"

    watched = pool.submit("watched", "watched", long)
    waiting = pool.submit("next", "next", lambda progress: "ran")
    deadline = time.time() + 1.5
    while time.time() < deadline:  # a page polling the running job keeps it alive
        assert watched.fraction < 1 and not watched.finished
        time.sleep(0.1)
    assert waiting.position == 0 and watched.error is None
    assert watched.wait(5) and watched.cancelled and "no page was watching" in watched.error  # left alone: stopped
    assert waiting.wait(5) and waiting.result == "ran"
    again = pool.submit("watched", "watched", lambda progress: "restarted")
    assert again is not watched and again.wait(5) and again.result == "restarted"
    pool.shutdown()
