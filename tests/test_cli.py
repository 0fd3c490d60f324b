import json

import pytest

from cnnviz.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_models_json_shape(capsys):
    rows = run_json(capsys, "models")
    names = {r["name"] for r in rows}
    assert {"efficientnet_lite0", "mobilenet_v2_tv", "vgg16_conv", "resnet50", "efficientnet_b0"} <= names
    for r in rows:
        assert set(r) == {"name", "input_size", "layers", "embedding_layer", "weights", "published_top1", "params"}
        assert len(r["layers"]) == 8 and r["weights"] in ("available", "missing")
    by = {r["name"]: r for r in rows}
    assert by["efficientnet_lite0"]["weights"] == "available"


def test_models_table_and_names_only(capsys):
    code, out, _ = run(capsys, "models", "--names-only")
    assert code == 0 and out.split()[0] == "efficientnet_lite0"


def test_datasets_json_shape(capsys):
    rows = run_json(capsys, "datasets")
    assert [r["name"] for r in rows] == ["stamps", "emoji3d", "fashion"]
    for r in rows:
        assert set(r) == {"name", "n_images", "n_classes", "source"} and r["n_classes"] == 10


def test_predict_json_on_files_and_folder(capsys, photos):
    data = run_json(capsys, "predict", str(photos["coffee"]), str(photos["chelsea"].parent), "--model", "efficientnet_lite0")
    preds = data["predictions"]
    assert len(preds) == 3  # coffee, then the folder's chelsea and coffee
    for p in preds:
        assert len(p["top5"]) == 5 and set(p["top5"][0]) == {"class_id", "label", "probability"}
    assert preds[0]["top5"][0]["label"] == "espresso"


def test_precompute_then_search_json(capsys, tiny_folder):
    code, out, err = run(capsys, "precompute", "--images", str(tiny_folder), "--model", "efficientnet_lite0", "--layers", "stem_relu,avg_pool")
    assert code == 0, err
    assert "stem_relu" in out and "avg_pool" in out
    data = run_json(capsys, "search", "--images", str(tiny_folder), "--model", "efficientnet_lite0", "--layer", "avg_pool",
                    "--metric", "minkowski", "--p", "2", "--query", "birds/" + sorted((tiny_folder / "birds").iterdir())[0].name,
                    "--top-k", "5")
    assert data["query"]["label"] == "birds"
    assert [r["rank"] for r in data["results"]] == [1, 2, 3, 4, 5]
    assert set(data["results"][0]) == {"rank", "id", "path", "label", "similarity", "distance"}
    assert data["query"]["id"] not in [r["id"] for r in data["results"]]
    assert 0 <= data["score"] <= 100 and data["score_k"] == 15
    dists = [r["distance"] for r in data["results"]]
    assert dists == sorted(dists)
    full = run_json(capsys, "search", "--images", str(tiny_folder), "--model", "efficientnet_lite0", "--layer", "avg_pool",
                    "--metric", "minkowski", "--p", "2", "--query", data["query"]["id"])
    assert len(full["results"]) == 11 and full["results"][:5] == data["results"]
    assert (full["score"], full["precision_at_k"]) == (data["score"], data["precision_at_k"])  # --top-k shows, never scores


def test_search_with_external_query_has_no_score(capsys, tiny_folder, photos):
    data = run_json(capsys, "search", "--images", str(tiny_folder), "--model", "efficientnet_lite0", "--layer", "embedding",
                    "--metric", "cosine", "--query", str(photos["coffee"]))
    assert data["score"] is None and len(data["results"]) == 12


def test_evaluate_json_shape(capsys, tiny_folder):
    data = run_json(capsys, "evaluate", "--images", str(tiny_folder), "--model", "efficientnet_lite0", "--layer", "all", "--metric", "cosine,euclidean".split(",")[0])
    assert data["dataset"] == "tiny" and data["model"] == "efficientnet_lite0"
    assert len(data["rows"]) == 9
    for r in data["rows"]:
        assert set(r) == {"layer", "metric", "mean_score", "precision_at_k", "knn_accuracy", "n_images", "n_queries", "ci95"}
        assert 0 <= r["mean_score"] <= 100 and 0 <= r["knn_accuracy"] <= 1 and r["n_images"] == 12
        assert r["n_queries"] == 12 and r["ci95"] is None  # a small set: every image is a query, exact
    assert data["score_k"] == 15


def test_evaluate_all_metrics(capsys, tiny_folder):
    data = run_json(capsys, "evaluate", "--images", str(tiny_folder), "--model", "efficientnet_lite0", "--metric", "all")
    assert [r["metric"] for r in data["rows"]] == ["cosine", "euclidean", "sqeuclidean", "minkowski", "manhattan", "chebyshev", "inner_product"]


@pytest.mark.parametrize("argv,message", [
    (["search", "--dataset", "nope", "--model", "efficientnet_lite0", "--query", "0"], "unknown dataset 'nope'"),
    (["search", "--dataset", "stamps", "--model", "resnet5", "--query", "0"], "unknown model 'resnet5'"),
    (["search", "--dataset", "stamps", "--model", "efficientnet_lite0", "--layer", "zz", "--query", "0"], "has no layer zz"),
    (["search", "--dataset", "stamps", "--model", "efficientnet_lite0", "--query", "no/such.jpg"], "neither an image id"),
    (["evaluate", "--dataset", "stamps", "--model", "efficientnet_lite0", "--metric", "hamming"], "unknown metric 'hamming'"),
    (["predict", "/definitely/missing.jpg", "--model", "efficientnet_lite0"], "no such file"),
    (["predict", "TEXTFILE", "--model", "efficientnet_lite0"], "notes.jpg: not an image"),
    (["predict", "TEXTFILE", "--model", "vgg16_conv"], None),
])
def test_bad_input_is_one_line_and_nonzero(capsys, tmp_path, argv, message):
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    argv = [str(text) if a == "TEXTFILE" else a for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
    if message:
        assert message in lines[0]


def test_argparse_errors_exit_nonzero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["search", "--model", "x"])
    assert exc.value.code == 2
