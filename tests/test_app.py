from streamlit.testing.v1 import AppTest

from pathlib import Path

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 180  # first run builds the model and extracts features


def test_home_page_runs_and_a_click_shows_results():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    assert at.selectbox(key="home_dataset").value == "stamps"
    first = next(b for b in at.button if b.key and b.key.startswith("q_birds/"))
    first.click().run()
    assert not at.exception
    score = [m for m in at.metric if m.label == "Search score"]
    assert score and 0 <= float(score[0].value.split()[0]) <= 100
    assert any("Query: birds/" in s.value for s in at.subheader)


def test_changing_dataset_clears_a_stale_query():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    next(b for b in at.button if b.key and b.key.startswith("q_")).click().run()
    at.selectbox(key="home_dataset").set_value("fashion").run()
    assert not at.exception
    assert not [m for m in at.metric if m.label == "Search score"]
