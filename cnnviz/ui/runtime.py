"""Streamlit runtime settings that a TensorFlow app needs.

After *every* script run (each rerun, each fragment run) Streamlit 1.67 calls
``keras.backend.clear_session()`` when Keras is imported
(``script_runner._clean_problem_modules``) and then ``gc.collect(2)``
(``runner.postScriptGC``, set to false in ``.streamlit/config.toml``).
``clear_session`` empties TensorFlow's eager kernel cache and runs a full
garbage collection of a heap holding TensorFlow, so every query paid kernel
re-creation and two full collections. Measured with py-spy on a server showing
the 10,000-image Fashion-MNIST folder: the two took ~17 of 20 sampled seconds
while a page polled its background jobs. cnnviz keeps its models for the
process (``workflows.get_model``), so there is no per-run Keras state to reset.
"""

from __future__ import annotations

import sys


def keep_keras_state_between_runs() -> bool:
    """Stop Streamlit from clearing the Keras session after each run (matplotlib figures are still closed).

    Returns whether the hook was found (a Streamlit upgrade may move it; then nothing changes).
    """
    from streamlit.runtime.scriptrunner import script_runner

    if not hasattr(script_runner, "_clean_problem_modules"):
        return False

    def close_pyplot_figures() -> None:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            plt.close("all")

    script_runner._clean_problem_modules = close_pyplot_figures
    return True
