"""cnnviz dashboard entrypoint: page config, shared sidebar pickers, navigation.

Pages live in app_pages/, not pages/: Streamlit treats a pages/ folder next to
the entrypoint as a legacy (v1) multipage app, and on a fresh server a deep link
such as /compare then runs the page *without* this file (no sidebar, no state).
"""

import time

import streamlit as st

from cnnviz.data import DEFAULT_DATASET, list_datasets
from cnnviz.models import DEFAULT_MODEL
from cnnviz.ui import auth, runtime, sidebar, state

started = time.perf_counter()
runtime.keep_keras_state_between_runs()  # Streamlit would empty TF's kernel cache and run a full GC after every run
st.set_page_config(page_title="cnnviz", page_icon="🔎", layout="wide")
auth.require_login()  # only when [auth] is in secrets.toml: anonymous visitors get a login button, nothing else
state.init_defaults(DEFAULT_DATASET, DEFAULT_MODEL)
state.restore_from_url(list_datasets())  # a link's ?dataset=…&model=…&query=… (once per session, checked)
sidebar.dataset_and_model(list_datasets())

# Material icons ship with Streamlit; emoji need a system emoji font (absent on many servers: boxes).
pages = [
    st.Page("app_pages/home.py", title="Home: image search", icon=":material/home:", default=True),
    st.Page("app_pages/search.py", title="Search (advanced)", icon=":material/manage_search:"),
    st.Page("app_pages/compare.py", title="Compare models", icon=":material/compare:"),
    st.Page("app_pages/explorer.py", title="Model Explorer", icon=":material/neurology:"),
    st.Page("app_pages/attribution.py", title="Attribution", icon=":material/local_fire_department:"),
    st.Page("app_pages/benchmark.py", title="Benchmark", icon=":material/speed:"),
    st.Page("app_pages/adapt.py", title="Adapt to your data", icon=":material/model_training:"),
    st.Page("app_pages/data_quality.py", title="Data quality", icon=":material/fact_check:"),
]
page = st.navigation(pages)
state.write_url(page.url_path)  # the address reproduces this view
page.run()
state.record_run_time(time.perf_counter() - started)
