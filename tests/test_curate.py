"""Curation: label issues from injected noise, re-encoded copies as duplicates, leaks, JSON shape, CLI, page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz import curate as C
from cnnviz.cli import main
from cnnviz.data import scan_folder
from cnnviz.scoring import evaluate_retrieval
from cnnviz.search import ExactIndex

SAMPLES = Path(__file__).resolve().parent.parent / "cnnviz" / "data" / "samples" / "stamps"
MODEL = "efficientnet_lite0"
CLASSES = ("birds", "fruit", "money", "roadsigns")
FLIPS = {"birds": "fruit", "fruit": "money", "money": "roadsigns", "roadsigns": "birds"}  # one image per class moves


def _reencode(src: Path, dst: Path, scale: float = 0.8, quality: int = 70) -> None:
    img = Image.open(src).convert("RGB")
    img.resize((int(img.width * scale), int(img.height * scale)), Image.BICUBIC).save(dst, quality=quality)


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> tuple[Path, set[str], tuple[str, str], tuple[str, str]]:
    """4 classes × 8 stamps; one image per class filed under the wrong class; a re-encoded and an exact copy."""
    root = tmp_path_factory.mktemp("curate") / "noisy"
    flipped = set()
    for cls in CLASSES:
        (root / cls).mkdir(parents=True)
    for cls in CLASSES:
        for n, src in enumerate(sorted((SAMPLES / cls).iterdir())[:8]):
            to = FLIPS[cls] if n == 3 else cls
            shutil.copy(src, root / to / src.name)
            if to != cls:
                flipped.add(f"{to}/{src.name}")
    birds = sorted((root / "birds").iterdir())
    _reencode(birds[0], root / "birds" / "zz_reencoded.jpg")
    shutil.copy(birds[1], root / "birds" / "zz_exact_copy.jpg")
    return root, flipped, (f"birds/{birds[0].name}", "birds/zz_reencoded.jpg"), (f"birds/{birds[1].name}", "birds/zz_exact_copy.jpg")


@pytest.fixture(scope="module")
def noisy_result(noisy) -> dict:
    from cnnviz.workflows import curate

    return curate(MODEL, images=str(noisy[0]))


def _pairs(rows: list[dict]) -> dict[frozenset, dict]:
    return {frozenset((r["a"], r["b"])): r for r in rows}


def test_flipped_labels_rank_above_clean_ones(noisy, noisy_result):
    """Every image's cleanlab label quality from the same probe: flipped images rank higher on average."""
    from cnnviz.features import extract_features
    from cnnviz.workflows import get_model

    root, flipped, _, _ = noisy
    ds = scan_folder(root)
    loaded = get_model(MODEL)
    feats = extract_features(loaded, ds, [loaded.spec.embedding_layer])[loaded.spec.embedding_layer]
    config = C.CurateConfig()
    classes = ds.classes
    y = np.array([classes.index(lab) for lab in ds.labels])
    probs = C.oof_probabilities(C.probe_inputs(feats, config.probe_dim, config.seed), y, len(classes), config)
    scores = C.label_issues(y, probs)[1]
    rank = np.argsort(np.argsort(scores, kind="stable"), kind="stable")  # 0 = most likely a label error
    is_flipped = np.array([i in flipped for i in ds.ids])
    assert rank[is_flipped].mean() < rank[~is_flipped].mean()
    reported = [r["id"] for r in noisy_result["label_issues"]]
    assert set(reported) & flipped  # the workflow's list finds some of them
    found = next(r for r in noisy_result["label_issues"] if r["id"] in flipped)
    assert found["given"] == found["id"].split("/")[0] and found["suggested"] != found["given"]


def test_reencoded_and_exact_copies_are_duplicates(noisy, noisy_result):
    _, _, reencoded, exact = noisy
    pairs = _pairs(noisy_result["near_duplicates"])
    assert frozenset(reencoded) in pairs
    assert pairs[frozenset(exact)]["kind"] == "exact" and pairs[frozenset(exact)]["distance"] < 1e-4
    kinds = [C.KIND_ORDER[r["kind"]] for r in noisy_result["near_duplicates"]]
    assert kinds == sorted(kinds)  # exact first, then perceptual, then feature duplicates


def test_json_shape_and_order(noisy_result):
    r = noisy_result
    assert {"dataset", "model", "layer", "label_issues", "near_duplicates", "outliers", "class_summary", "leaks"} <= set(r)
    assert r["dataset"] == "noisy" and r["model"] == MODEL and r["layer"] == "avg_pool"
    assert all(set(x) == {"id", "given", "suggested", "confidence"} for x in r["label_issues"])
    assert all(set(x) == {"a", "b", "distance", "kind"} for x in r["near_duplicates"])
    assert all(set(x) == {"id", "score"} for x in r["outliers"])
    assert [c["class"] for c in sorted(r["class_summary"], key=lambda c: c["class"])] == sorted(CLASSES)
    assert all(set(x) == {"class", "n", "label_issue_rate", "mean_score"} for x in r["class_summary"])
    conf = [x["confidence"] for x in r["label_issues"]]
    assert conf == sorted(conf, reverse=True)  # most likely first
    assert r["leaks"] == [] and not r["split_layout"]
    probe = r["probe"]  # the layers the label-issue probe chose, with their out-of-fold accuracy
    assert 1 <= len(probe["layers"]) <= C.CurateConfig().probe_layers
    assert set(probe["layers"]) <= set(probe["cv_accuracy"]) == set(probe["candidates"])
    acc = probe["cv_accuracy"]
    assert sorted((acc[n] for n in probe["layers"]), reverse=True) == sorted(acc.values(), reverse=True)[: len(probe["layers"])]
    w = r["what_if"]
    assert 0 <= w["original"] <= 100 and 0 <= w["without_flagged"] <= 100
    assert w["n_queries_without"] == r["n_images"] - w["excluded"]["total"]
    json.dumps(r)  # plain data


def test_original_score_is_the_dataset_mean_search_score(noisy, noisy_result):
    from cnnviz.features import extract_features
    from cnnviz.workflows import get_model

    ds = scan_folder(noisy[0])
    loaded = get_model(MODEL)
    feats = extract_features(loaded, ds, ["avg_pool"])["avg_pool"]
    assert noisy_result["what_if"]["original"] == pytest.approx(evaluate_retrieval(feats, ds.labels).mean_score, abs=1e-3)


def _layers_with_signal(n_per_class: int = 12, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Three classes; "good" separates them, "weak" barely, "noise" not at all, "good_twin" equals "good"."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per_class)
    centres = rng.normal(size=(3, 40))
    good = centres[y] * 3 + rng.normal(size=(len(y), 40))
    weak = centres[y] * 0.4 + rng.normal(size=(len(y), 40))
    noise = rng.normal(size=(len(y), 40))
    layers = {"noise": noise, "good": good.astype(np.float32), "weak": weak, "good_twin": good.astype(np.float32).copy()}
    return layers, y


def test_probe_averages_the_layers_with_the_best_out_of_fold_accuracy():
    layers, y = _layers_with_signal()
    probs, info = C.layer_probe(layers, y, 3, C.CurateConfig(probe_dim=8))
    assert info["same_as"] == {"good_twin": "good"}  # identical features count once
    assert info["candidates"] == ["noise", "good", "weak"]
    assert info["layers"] == ["good", "weak"]  # the two best by out-of-fold accuracy, best first
    acc = info["cv_accuracy"]
    assert acc["good"] > acc["weak"] > acc["noise"] and acc["good"] > 0.9
    assert probs.shape == (len(y), 3) and np.allclose(probs.sum(axis=1), 1.0)
    one, info1 = C.layer_probe(layers, y, 3, C.CurateConfig(probe_dim=8, probe_layers=1))
    assert info1["layers"] == ["good"] and info1["cv_accuracy_used"] == acc["good"]


def test_probe_flags_flipped_labels_through_the_best_layer():
    """A flipped label is obvious in the good layer only; choosing layers by accuracy finds it."""
    layers, y = _layers_with_signal()
    noisy = y.copy()
    noisy[[0, 12, 24]] = [1, 2, 0]
    probs, info = C.layer_probe({"noise": layers["noise"], "good": layers["good"]}, noisy, 3,
                                C.CurateConfig(probe_dim=8, probe_layers=1))
    assert info["layers"] == ["good"]
    _, score = C.label_issues(noisy, probs)
    assert set(np.argsort(score)[:3]) == {0, 12, 24}


def test_probes_of_several_models_are_averaged_and_named_by_model():
    layers, y = _layers_with_signal()
    cfg = C.CurateConfig(probe_dim=8)
    a, b = {"good": layers["good"], "noise": layers["noise"]}, {"weak": layers["weak"], "noise": layers["noise"]}
    alone, info_alone = C.model_probe({"a": a}, y, 3, cfg)
    assert np.array_equal(alone, C.layer_probe(a, y, 3, cfg)[0]) and info_alone["layers"] == ["good", "noise"]
    both, info = C.model_probe({"a": a, "b": b}, y, 3, cfg)
    assert np.allclose(both, (alone + C.layer_probe(b, y, 3, cfg)[0]) / 2)
    assert info["layers"] == ["a:good", "a:noise", "b:weak", "b:noise"] and set(info["models"]) == {"a", "b"}
    assert info["cv_accuracy"]["a:good"] == info["models"]["a"]["cv_accuracy"]["good"]


def test_flagged_label_issues_are_the_head_of_the_ranking():
    """Every flagged image scores lower than every unflagged one (cleanlab's default filter breaks this)."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 30)
    logits = rng.normal(size=(120, 4))
    logits[np.arange(120), y] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    mask, score = C.label_issues(y, probs)
    assert 0 < mask.sum() < len(y)
    assert score[mask].max() <= score[~mask].min()


def test_probe_feature_set_uses_only_cached_layers_unless_it_computes(monkeypatch):
    """Small dataset or chosen layer not cached: every layer in one pass; large and cached: cached layers + a note."""
    from types import SimpleNamespace

    from cnnviz import cache, features

    asked = []
    cached = {"b", "c"}
    monkeypatch.setattr(features, "feature_key", lambda digest, loaded, layer, pooling: layer)
    monkeypatch.setattr(cache, "load_matrix", lambda kind, key: np.zeros((2, 2)) if key in cached else None)

    def fake_extract(loaded, ds, layers, pooling="avg", progress=None):
        asked.append(list(layers))
        return {n: np.full((2, 2), i, np.float32) for i, n in enumerate(layers)}

    monkeypatch.setattr(features, "extract_features", fake_extract)
    loaded = SimpleNamespace(spec=SimpleNamespace(name="m", all_layers=("a", "b", "c", "d")), adapted=None)
    ds = SimpleNamespace(digest=lambda: "digest", items=[None] * 3)
    feats, note = C.probe_feature_set(loaded, ds, "c")  # small: the missing layers are computed
    assert asked == [["a", "b", "c", "d"]] and list(feats) == ["c", "a", "b", "d"] and note is None
    monkeypatch.setattr(C, "PROBE_EXTRACT_MAX_IMAGES", 2)
    asked.clear()
    feats, note = C.probe_feature_set(loaded, ds, "c")  # large and "c" cached: no second pass
    assert asked == [["b", "c"]] and list(feats) == ["c", "b"]  # the chosen layer first
    assert note and "a, d are not cached" in note
    feats, note = C.probe_feature_set(loaded, ds, "a")
    assert asked[-1] == ["a", "b", "c", "d"] and list(feats)[0] == "a" and note is None
    feats, note = C.probe_feature_set(SimpleNamespace(spec=loaded.spec, adapted=object()), ds, "d")
    assert asked[-1] == ["d"] and list(feats) == ["d"] and note is None


def test_what_if_excludes_rows_as_queries_and_results():
    """Synthetic: two clean clusters plus one mislabelled point; excluding it makes every score 100."""
    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.normal(0, 0.05, (10, 4)) + [5, 0, 0, 0], rng.normal(0, 0.05, (10, 4)) + [0, 5, 0, 0]])
    labels = np.array(["a"] * 10 + ["b"] * 10, dtype=object)
    labels[0] = "b"
    index = ExactIndex(feats, "cosine")
    idx, _ = C.neighbours(feats, index, 6)
    requery = lambda rows, k: index.search(feats[rows], k, exclude=rows)[0]  # noqa: E731
    excluded = np.zeros(20, bool)
    excluded[0] = True
    scores = C.query_scores(idx, labels, 8, excluded, requery)  # 6 neighbours fetched: every row needs a requery
    assert np.isnan(scores[0]) and np.allclose(scores[1:], 100.0)
    assert C.query_scores(idx, labels, 8, None, requery)[0] == 0.0


def test_neighbours_query_in_bounded_blocks(monkeypatch):
    """The kNN graph never asks an exact index for more than EXACT_BLOCK_ENTRIES distances at once."""
    seen = []

    class Spy(ExactIndex):
        def search(self, queries, k, exclude=None):
            seen.append(len(queries))
            return super().search(queries, k, exclude)

    feats = np.random.default_rng(1).normal(size=(50, 8)).astype(np.float32)
    monkeypatch.setattr(C, "EXACT_BLOCK_ENTRIES", 500)  # 10 queries × 50 rows per block
    idx, dist = C.neighbours(feats, Spy(feats, "cosine"), 5)
    assert max(seen) == 10 and sum(seen) == 50
    assert idx.shape == (50, 5) and (idx != np.arange(50)[:, None]).all() and (np.diff(dist, axis=1) >= 0).all()


@pytest.fixture(scope="module")
def split_folder(tmp_path_factory) -> Path:
    """train/{birds,fruit} and test/{birds,fruit}; one training bird re-encoded into test (a leak)."""
    root = tmp_path_factory.mktemp("splits") / "splits"
    for cls in ("birds", "fruit"):
        files = sorted((SAMPLES / cls).iterdir())
        for split, chosen in (("train", files[:5]), ("test", files[5:8])):
            (root / split / cls).mkdir(parents=True)
            for src in chosen:
                shutil.copy(src, root / split / cls / src.name)
    _reencode(sorted((SAMPLES / "birds").iterdir())[0], root / "test" / "birds" / "leaked.jpg", scale=0.9)
    return root


def test_split_layout_takes_the_class_from_the_second_level(split_folder, tiny_folder):
    layout = C.dataset_layout(scan_folder(split_folder))
    assert set(layout.labels) == {"birds", "fruit"} and set(layout.splits) == {"train", "test"}
    assert "split" in layout.note
    plain = C.dataset_layout(scan_folder(tiny_folder))
    assert plain.splits is None and set(plain.labels) == {"birds", "fruit", "money"}


def test_leak_between_train_and_test(split_folder):
    from cnnviz.workflows import curate

    r = curate(MODEL, images=str(split_folder))
    assert r["split_layout"] and r["classes"] == ["birds", "fruit"]
    first_bird = sorted((SAMPLES / "birds").iterdir())[0].name
    leak = next(x for x in r["leaks"] if {x["a"], x["b"]} == {f"train/birds/{first_bird}", "test/birds/leaked.jpg"})
    assert {leak["a_split"], leak["b_split"]} == {"train", "test"}
    assert all(x["a_split"] != x["b_split"] for x in r["leaks"])
    assert any("split" in n for n in r["notes"])


def test_unlabelled_folder_gives_duplicates_but_no_label_issues(tmp_path):
    from cnnviz.workflows import curate

    root = tmp_path / "flat"
    root.mkdir()
    files = sorted((SAMPLES / "fruit").iterdir())[:6]
    for src in files:
        shutil.copy(src, root / src.name)
    shutil.copy(files[0], root / "copy.jpg")
    r = curate(MODEL, images=str(root))
    assert r["label_issues"] == [] and r["class_summary"] == [] and r["what_if"] is None
    assert any("no class" in n for n in r["notes"])
    assert frozenset((files[0].name, "copy.jpg")) in _pairs(r["near_duplicates"])


def test_result_is_cached_on_disk(noisy, noisy_result, monkeypatch):
    from cnnviz import workflows

    monkeypatch.setattr(C, "curate_features", lambda *a, **k: pytest.fail("recomputed instead of read from the cache"))
    again = workflows.curate(MODEL, images=str(noisy[0]))
    assert again["label_issues"] == noisy_result["label_issues"]


def test_result_flags():
    cur = {"label_issues": [{"id": "x", "given": "a", "suggested": "b", "confidence": 0.9}],
           "near_duplicates": [{"a": "q", "b": "y", "distance": 0.0, "kind": "exact"}]}
    assert C.result_flags(cur, "q", ["x", "y", "z"]) == {"x": "label? a → b", "y": "duplicate of the query"}
    assert C.result_flags(cur, "other", ["y"]) == {} and C.result_flags(None, "q", ["x"]) == {}


def test_cli_json_and_table(noisy, noisy_result, capsys):
    assert main(["curate", "--images", str(noisy[0]), "--model", MODEL, "--json"]) == 0
    out, _ = capsys.readouterr()
    data = json.loads(out)
    assert data["label_issues"] == noisy_result["label_issues"] and data["near_duplicates"] == noisy_result["near_duplicates"]
    assert main(["curate", "--images", str(noisy[0]), "--model", MODEL, "--limit", "2"]) == 0
    out, _ = capsys.readouterr()
    assert "suspected label errors" in out and "near-duplicates" in out and "mean search score" in out
    assert f"label-issue probe: {noisy_result['probe']['layers'][0]} (" in out


def test_cli_probe_models_average_a_second_family(noisy, noisy_result, capsys):
    assert main(["curate", "--images", str(noisy[0]), "--model", MODEL, "--probe-models", f"mobilenet_v2_tv,{MODEL}",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    probe = data["probe"]
    assert list(probe["models"]) == [MODEL, "mobilenet_v2_tv"]  # the chosen model itself is not asked twice
    assert any(n.startswith("mobilenet_v2_tv:") for n in probe["layers"]) and data["settings"]["probe_models"] == ["mobilenet_v2_tv"]
    flipped = noisy[1]
    assert {r["id"] for r in data["label_issues"][: len(flipped)]} == flipped
    from cnnviz.workflows import curate  # a separate cache entry: the single-model result is unchanged

    assert curate(MODEL, images=str(noisy[0]))["probe"] == noisy_result["probe"]
    assert main(["curate", "--images", str(noisy[0]), "--model", MODEL, "--probe-models", "no_such_net"]) == 2
    assert "no_such_net" in capsys.readouterr().err


def test_cli_bad_input(capsys, tmp_path):
    assert main(["curate", "--images", str(tmp_path / "missing"), "--model", MODEL]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_data_quality_page_and_click_opens_search(noisy, noisy_result, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CNNVIZ_DATA_ROOTS", str(noisy[0].parent))  # server folders must be inside the data roots

    app = str(Path(__file__).resolve().parent.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=300)
    root = str(noisy[0])
    at.session_state["cnnviz.custom_datasets"] = {"noisy (folder)": root}  # as if opened in the sidebar
    at.session_state["cnnviz.dataset"] = root
    at.switch_page("app_pages/data_quality.py").run()
    assert not at.exception
    assert any(m.label == "Mean search score" for m in at.metric)
    assert any(m.label.startswith("Without the") for m in at.metric)
    labels = [t.label for t in at.tabs]
    assert labels[0] == f"Suspected label errors ({len(noisy_result['label_issues'])})"
    assert any(b.label.startswith("Download all") for b in at.get("download_button"))
    probe_line = next(c.value for c in at.caption if c.value.startswith("Label-issue probe:"))
    assert all(layer in probe_line for layer in noisy_result["probe"]["layers"])  # the page names the probe's layers
    first = noisy_result["label_issues"][0]["id"]
    at.button(key=f"quality.issue.{first}").click().run()
    assert not at.exception
    assert at.session_state["cnnviz.query"] == first
    assert any(f"Results for {first}" in s.value for s in at.subheader)  # landed on the Search page
    # The exact copy's original as the query: curation is cached, so its copy among the results is marked.
    at.switch_page("app_pages/data_quality.py").run()
    exact = noisy_result["near_duplicates"][0]
    assert exact["kind"] == "exact"
    at.button(key="quality.dup.0.a").click().run()
    assert not at.exception and at.session_state["cnnviz.query"] == exact["a"]
    assert any("duplicate of the query" in h.value for h in at.get("html"))  # a flag in the results grid
    # A second model asked about the labels: the probe line names its layers.
    at.switch_page("app_pages/data_quality.py").run()
    at.multiselect(key="quality.probe_models").set_value(["mobilenet_v2_tv"]).run()
    assert not at.exception
    probe_line = next(c.value for c in at.caption if c.value.startswith("Label-issue probe:"))
    assert f"{MODEL}:" in probe_line and "mobilenet_v2_tv:" in probe_line
