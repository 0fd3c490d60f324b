"""The dashboard keeps TensorFlow's kernel cache and skips the full GC after each Streamlit run."""

from __future__ import annotations

import tomllib
from pathlib import Path


def test_streamlit_no_longer_clears_the_keras_session(monkeypatch):
    import keras
    from streamlit.runtime.scriptrunner import script_runner

    from cnnviz.ui import runtime

    calls = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(script_runner, "_clean_problem_modules", script_runner._clean_problem_modules)
    if script_runner._clean_problem_modules.__module__.startswith("streamlit"):  # not yet replaced in this process
        script_runner._clean_problem_modules()
        assert calls, "Streamlit's own hook clears the Keras session (what the fix is for)"
        calls.clear()
    assert runtime.keep_keras_state_between_runs()
    script_runner._clean_problem_modules()
    assert not calls


def test_post_script_gc_is_off():
    config = tomllib.loads((Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
