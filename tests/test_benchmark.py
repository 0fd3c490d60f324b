import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cnnviz.benchmark import TIMING_COLUMNS, advice, count_flops, linear_probe_accuracy, pareto_front, reference_results
from cnnviz.cli import main
from cnnviz.scoring import evaluate_retrieval


def test_flops_of_a_tiny_model_equal_a_hand_count():
    import keras

    x = inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(x)  # 2·8·8·(3·3·3)·4 = 13824
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)  # 2·4·4·(3·3)·4 = 1152
    x = keras.layers.SeparableConv2D(5, 1)(x)  # depthwise 2·4·4·1·4 = 128, pointwise 2·4·4·4·5 = 640
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(10)(x)  # 2·5·10 = 100
    assert count_flops(keras.Model(inp, x)) == 13824 + 1152 + 128 + 640 + 100


def test_knn_accuracy_equals_a_hand_computation():
    # 1-D points; with 1-NN, 0.0→0.1 (a ✓), 0.1→0.0 (a ✓), 0.5→0.6 (b, but is a ✗), 0.6→0.5 (a, is b ✗),
    # 5.0→5.2 (b ✓), 5.2→5.0 (b ✓): 4 of 6.
    feats = np.array([[0.0], [0.1], [0.5], [0.6], [5.0], [5.2]], np.float32)
    labels = ["a", "a", "a", "b", "b", "b"]
    assert evaluate_retrieval(feats, labels, "euclidean", k=2, knn_k=1).knn_accuracy == pytest.approx(4 / 6)


def test_pareto_front():
    rows = [{"model": "fast", "lat": 1, "acc": 0.5}, {"model": "slow_good", "lat": 10, "acc": 0.9},
            {"model": "dominated", "lat": 5, "acc": 0.4}, {"model": "mid", "lat": 3, "acc": 0.7},
            {"model": "no_acc", "lat": 0.5, "acc": None}]
    assert pareto_front(rows, "lat", "acc") == ["fast", "slow_good", "mid"]
    # Throughput-style x (higher is better): "slow_good" still wins on y, "dominated" on x.
    assert pareto_front(rows, "lat", "acc", lower_x_is_better=False) == ["slow_good"]


def test_linear_probe_separable_data(rng):
    feats = np.concatenate([rng.normal(0, 1, (20, 4)), rng.normal(6, 1, (20, 4))]).astype(np.float32)
    assert linear_probe_accuracy(feats, ["x"] * 20 + ["y"] * 20) > 0.95
    assert linear_probe_accuracy(feats[:3], ["x", "y", "y"]) is None  # a class with one image: no CV


def test_advice_names_the_fastest_near_best():
    rows = [{"model": "big", "knn_accuracy": 0.80, "latency_ms_b1_p50": 100.0},
            {"model": "small", "knn_accuracy": 0.795, "latency_ms_b1_p50": 10.0},
            {"model": "tiny", "knn_accuracy": 0.60, "latency_ms_b1_p50": 5.0}]
    text = " ".join(advice(rows))
    assert "**big**" in text and "Fastest within 1 point of it: **small**" in text and "Fastest overall: **tiny**" in text


def test_benchmark_cli_json(capsys, tiny_folder):
    code = main(["benchmark", "--models", "efficientnet_lite0,mobilenet_v2", "--images", str(tiny_folder),
                 "--runs", "5", "--batch-sizes", "1,4", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert {"device", "date", "versions", "rows"} <= set(data)
    assert data["device"].startswith(("CPU", "GPU"))
    by = {r["model"]: r for r in data["rows"]}
    keys = {"model", "weights", "params", "size_mb", "flops", "input_size", "latency_ms_b1_p50", "latency_ms_b1_p95",
            "throughput_b32_img_s", "knn_accuracy", "mean_score", "published_top1", "published_source"}
    for r in data["rows"]:
        assert keys <= set(r)
        assert 0 < r["latency_ms_b1_p50"] <= r["latency_ms_b1_p95"]
        assert r["throughput_b32_img_s"] > 0 and r["params"] > 1e6 and r["size_mb"] > 1 and r["flops"] > 1e8
    lite = by["efficientnet_lite0"]
    assert lite["weights"] == "imagenet" and 0 <= lite["knn_accuracy"] <= 1 and 0 <= lite["mean_score"] <= 100
    missing = by["mobilenet_v2"]  # no Keras weights offline: timing only, clearly labelled
    assert abs(missing["flops"] / 2 - 300e6) / 300e6 < 0.03  # MobileNetV2 paper: 300M multiply-adds at 224 px
    assert missing["weights"] == "random" and missing["knn_accuracy"] is None and missing["mean_score"] is None
    # A second call reads the cached result (same date).
    assert main(["benchmark", "--models", "efficientnet_lite0,mobilenet_v2", "--images", str(tiny_folder),
                 "--runs", "5", "--batch-sizes", "1,4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["date"] == data["date"]


def test_benchmark_bad_arguments(capsys):
    assert main(["benchmark", "--models", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main(["benchmark", "--models", "efficientnet_lite0", "--batch-sizes", "1,x"]) == 2
    assert "--batch-sizes" in capsys.readouterr().err


def _cli_under_backend(backend: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "cnnviz", "benchmark", *args], env=env, capture_output=True,
                          text=True, timeout=600)


def test_benchmark_times_the_same_model_on_the_keras_jax_backend():
    # The README's GPU table was measured this way (TensorFlow cannot be installed on that machine).
    proc = _cli_under_backend("jax", "--models", "efficientnet_lite0", "--runs", "3", "--throughput-runs", "1",
                              "--batch-sizes", "1,2", "--no-cache", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["versions"]["keras backend"] == "jax" and "jaxlib" in data["versions"]
    assert data["settings"]["runs_b1"] == 3 and data["settings"]["runs_throughput"] == 1
    row = data["rows"][0]
    assert row["weights"] == "imagenet" and 0 < row["latency_ms_b1_p50"] <= row["latency_ms_b1_p95"]
    assert row["throughput_b32_img_s"] > 0
    assert row["peak_memory_mb"] is None  # CPU: no device memory to report
    from cnnviz.models.build import build_model

    model = build_model("efficientnet_lite0").model  # this process runs TensorFlow
    assert row["params"] == model.count_params() and row["flops"] == count_flops(model)


def test_benchmark_refuses_a_backend_it_cannot_time(capsys):
    proc = _cli_under_backend("numpy", "--models", "mobilenet_v2", "--runs", "2")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "not 'numpy'; set KERAS_BACKEND" in proc.stderr
    assert main(["benchmark", "--models", "mobilenet_v2", "--throughput-runs", "0"]) == 2
    assert "--throughput-runs must be at least 1" in capsys.readouterr().err


def test_pareto_and_advice_ignore_nan_rows():
    nan = float("nan")
    rows = [{"model": "a", "lat": 2.0, "acc": 0.8}, {"model": "random_fast", "lat": 1.0, "acc": nan},
            {"model": "b", "lat": 3.0, "acc": 0.9}]
    assert pareto_front(rows, "lat", "acc") == ["a", "b"]
    text = " ".join(advice([{"model": r["model"], "knn_accuracy": r["acc"], "latency_ms_b1_p50": r["lat"]} for r in rows]))
    assert "Most accurate here: **b**" in text and "Fastest overall: **random_fast**" in text


def test_reference_results_are_read_newest_first_and_bad_files_skipped(tmp_path, caplog):
    base = {"device": "GPU: X", "versions": {}, "settings": {"runs_b1": 1, "runs_throughput": 1}, "rows": []}
    (tmp_path / "old.json").write_text(json.dumps({**base, "date": "2026-01-01T00:00:00+00:00"}))
    (tmp_path / "new.json").write_text(json.dumps({**base, "date": "2026-06-01T00:00:00+00:00"}))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "partial.json").write_text(json.dumps({"device": "GPU: Y"}))
    got = reference_results(tmp_path)
    assert [r["date"][:7] for r in got] == ["2026-06", "2026-01"]
    assert "broken.json" in caplog.text and "partial.json" in caplog.text
    assert reference_results(tmp_path / "absent") == []


def test_shipped_gpu_reference_covers_every_model():
    from cnnviz.models import MODELS

    gpu = [r for r in reference_results() if r["device"].startswith("GPU")]
    assert gpu, "benchmarks/results should ship the measured GPU run"
    rows = {r["model"]: r for r in gpu[0]["rows"]}
    assert set(rows) == set(MODELS)
    for r in rows.values():
        assert set(TIMING_COLUMNS) <= set(r) and 0 < r["latency_ms_b1_p50"] <= r["latency_ms_b1_p95"]


def test_accuracy_note_says_which_queries_and_the_widest_interval():
    from cnnviz.benchmark import accuracy_note

    assert "every one of the 185 images" in accuracy_note([{"accuracy_queries": 185, "mean_score_ci95": None}])
    sampled = [{"accuracy_queries": 5000, "mean_score_ci95": [50.0, 52.0], "knn_accuracy_ci95": [0.70, 0.72]},
               {"accuracy_queries": 5000, "mean_score_ci95": [60.0, 61.0], "knn_accuracy_ci95": [0.80, 0.81]}]
    note = accuracy_note(sampled)
    assert "sample of 5,000" in note and "± 1.0 or better" in note and "± 0.010 or better" in note
    assert accuracy_note([{"accuracy_queries": None}]) is None  # speed only (unlabelled dataset)
    nan = float("nan")  # what a page's DataFrame row holds for a model measured without a dataset
    assert "185 images" in accuracy_note([{"accuracy_queries": 185, "mean_score_ci95": None},
                                          {"accuracy_queries": nan, "mean_score_ci95": nan, "knn_accuracy_ci95": nan}])
    assert "sample of 5,000" in accuracy_note([*sampled, {"accuracy_queries": nan, "mean_score_ci95": nan}])
