"""Curate a dataset with the model's eyes: likely label errors, near-duplicates, outliers, leaks between splits.

The statistics are cleanlab's: ``cleanlab.filter.find_label_issues`` and
``cleanlab.rank.get_label_quality_scores`` for label errors, ``Datalab`` with the
``near_duplicate`` and ``outlier`` issue types. cnnviz supplies what cleanlab needs
and does not compute itself at this scale:

- out-of-fold class probabilities from a cross-validated linear probe (scikit-learn shrinkage
  ``LinearDiscriminantAnalysis`` + ``cross_val_predict``) on cached features, one per layer; the layers
  with the best out-of-fold accuracy on the given labels are averaged;
- the k-nearest-neighbour graph, found with cnnviz's own search index
  (exact, or the FAISS index above ``ANN_MIN_ROWS``) in bounded blocks of
  queries, never an N × N matrix; cleanlab takes it as ``knn_graph``;
- exact duplicates by file content (sha256) and perceptual duplicates by a
  64-bit DCT hash (``imagehash.phash``), checked among feature neighbours and
  identical hashes (so also bounded);
- leaks: duplicate pairs whose images sit in different splits of a
  ``train/CLASS/…``, ``test/CLASS/…`` folder;
- the per-class summary and a "what if" search score with the flagged images removed.

Split layouts: cnnviz's folder scanner takes the first folder level as the
class. When every image sits under a first-level folder named like a split
(train, test, val, …) curation takes the split from the first level and the
class from the second.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath

import numpy as np

from .cache import file_digest
from .data.folder import ImageDataset
from .scoring import DEFAULT_K, position_weights

SPLIT_NAMES = frozenset({"train", "training", "test", "testing", "val", "valid", "validation", "dev", "eval", "holdout"})
CURATE_VERSION = 6  # bump when results change for the same inputs
HASHES_VERSION = 3  # bump when the file or perceptual hashes change (kept apart: re-hashing 10k images takes ~45 s)
KIND_ORDER = {"exact": 0, "perceptual": 1, "features": 2}

StageProgress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class CurateConfig:
    """Settings that decide a curation result (all part of its cache key)."""

    metric: str = "cosine"
    k: int = 10  # neighbours cleanlab's near_duplicate and outlier checks look at (its default)
    score_k: int = DEFAULT_K  # results per query for the search score
    folds: int = 5  # cross-validation folds of the probe
    # The probe: shrinkage LDA on unit-length features PCA-reduced to 32 dimensions, one per candidate layer; the
    # out-of-fold probabilities of the probe_layers layers with the best out-of-fold accuracy on the given labels are
    # averaged. Chosen on the three sample sets with 10% flipped labels, seeds 0-7 (docs/curate.md, "The probe").
    probe_dim: int = 32
    probe_layers: int = 2
    # Other models whose probes are averaged with the chosen model's (each one's best layers, equal weights): a
    # second family ranks flipped labels better than any one model (docs/curate.md, "Which model to curate with"), at the cost of
    # one feature pass per model over images not yet cached. Empty: the chosen model alone.
    probe_models: tuple[str, ...] = ()
    phash_bits: int = 4  # perceptual hashes within this many of 64 bits are duplicates (among the k neighbours)
    phash_nn_bits: int = 6  # … or within this many when the image is the other's nearest neighbour in features
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Layout:
    """Classes and splits of a dataset as curation reads them."""

    labels: list[str | None]
    splits: list[str] | None  # None when the folder is not split into train/test/…
    note: str | None


def dataset_layout(ds: ImageDataset) -> Layout:
    """Detect a ``SPLIT/CLASS/…`` layout; otherwise the dataset's own first-level classes."""
    parts = [PurePosixPath(i.id).parts for i in ds.items]
    if parts and all(len(p) >= 2 and p[0].lower() in SPLIT_NAMES for p in parts):
        splits = [p[0] for p in parts]
        labels = [p[1] if len(p) >= 3 else None for p in parts]
        names = sorted(set(splits))
        note = (f"split folders found ({', '.join(names)}): the split is the first folder level and the class the "
                "second; leaks are duplicates across splits")
        return Layout(labels, splits, note)
    return Layout(list(ds.labels), None, None)


# --- hashes --------------------------------------------------------------------------------------------------

def _phash(path) -> int:
    import imagehash

    from .data.images import load_image

    return int(str(imagehash.phash(load_image(path))), 16)


def file_hashes(ds: ImageDataset, progress: StageProgress | None = None) -> tuple[list[str], np.ndarray]:
    """sha256 of every file's bytes and a 64-bit perceptual hash (DCT) of its pixels.

    Cached per dataset content, so another model or layer of the same folder does not decode every image again.
    """
    from importlib.metadata import version

    from . import cache

    key = cache.make_key("curate-hashes", dataset=ds.digest(), phash=f"imagehash-{version('imagehash')}-phash",
                         version=HASHES_VERSION)
    hit = cache.load_arrays("curate", key)
    if hit is not None and len(hit[0]["phash"]) == len(ds.items):
        if progress:
            progress("hashing images", len(ds.items), len(ds.items))
        return [s.decode() for s in hit[0]["sha256"].tolist()], hit[0]["phash"]
    shas, phashes = [], np.zeros(len(ds.items), np.uint64)
    for n, item in enumerate(ds.items):
        shas.append(file_digest(item.path))
        phashes[n] = _phash(item.path)
        if progress and (n % 64 == 0 or n == len(ds.items) - 1):
            progress("hashing images", n + 1, len(ds.items))
    cache.save_arrays("curate", key, {"sha256": np.array([s.encode() for s in shas], dtype="S64"), "phash": phashes},
                      {"dataset": ds.name, "n_images": len(ds.items)})
    return shas, phashes


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Differing bits between 64-bit hashes (element-wise)."""
    return np.bitwise_count(np.bitwise_xor(a.astype(np.uint64), b.astype(np.uint64))).astype(np.int64)


# --- neighbours ----------------------------------------------------------------------------------------------

EXACT_BLOCK_ENTRIES = 8_000_000  # distances held at once by an exact index (64 MB of float64)


def neighbours(features: np.ndarray, index, k: int, progress: StageProgress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest other rows of every row, through ``index.search`` in bounded blocks of queries."""
    from .search import ExactIndex

    n = len(features)
    k = min(k, n - 1)
    block = max(1, min(4096, EXACT_BLOCK_ENTRIES // max(n, 1))) if isinstance(index, ExactIndex) else 4096
    idx = np.empty((n, k), np.int32 if n < 2**31 else np.int64)  # 1M × 30 neighbours: 120 MB
    dist = np.empty((n, k), np.float32)
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        i, d = index.search(np.asarray(features[rows]), k, exclude=rows)
        idx[rows], dist[rows] = i, d
        if progress:
            progress("finding neighbours", int(rows[-1]) + 1, n)
    return idx, np.maximum(dist, 0.0)


def knn_graph(idx: np.ndarray, dist: np.ndarray, k: int):
    """cleanlab's kNN graph: a CSR matrix with each row's k neighbours, nearest first."""
    from scipy.sparse import csr_matrix

    n = len(idx)
    k = min(k, idx.shape[1])
    indptr = np.arange(0, n * k + 1, k)
    return csr_matrix((dist[:, :k].astype(np.float64).ravel(), idx[:, :k].ravel(), indptr), shape=(n, n))


# --- the probe -----------------------------------------------------------------------------------------------

def probe_inputs(features: np.ndarray, dim: int, seed: int, fit_rows: int = 20_000, block: int = 65_536) -> np.ndarray:
    """Unit-length rows, PCA-reduced to ``dim`` when wider (fitted on a seeded sample; applied block by block)."""
    from sklearn.decomposition import PCA

    def unit(x):
        x = np.asarray(x, np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    n, d = features.shape
    if d <= dim or n <= dim:
        return unit(features)
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, fit_rows), replace=False))
    out = np.empty((n, dim), np.float64)
    with threadpool_limits(1):  # see oof_probabilities
        pca = PCA(dim, svd_solver="randomized", random_state=seed).fit(unit(features[sample]))
        for start in range(0, n, block):
            out[start : start + block] = pca.transform(unit(features[start : start + block]))
    return out


def oof_probabilities(x: np.ndarray, y: np.ndarray, n_classes: int, config: CurateConfig) -> np.ndarray:
    """Out-of-fold class probabilities (N, n_classes) of a cross-validated linear probe on ``x``.

    The probe is linear discriminant analysis with Ledoit-Wolf shrinkage (scikit-learn); on the sample sets with
    flipped labels it ranked the flips better than logistic regression and costs one covariance per fold.
    """
    import warnings

    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    counts = np.bincount(y, minlength=n_classes)
    folds = int(max(2, min(config.folds, counts[counts > 0].min())))
    cv = StratifiedKFold(folds, shuffle=True, random_state=config.seed)
    probe = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    # One BLAS/OpenMP thread: these matrices are small (N × 32), and on a busy 2-core machine the default
    # thread pools made one fit 25-50x slower (10k images: 193 s for a probe instead of a few seconds).
    with warnings.catch_warnings(), threadpool_limits(1):  # tiny classes, collinear columns: sklearn warns
        warnings.simplefilter("ignore")
        probs = cross_val_predict(probe, np.asarray(x, np.float64), y, cv=cv, method="predict_proba", n_jobs=1)
    probs = np.clip(probs, 1e-6, 1.0)  # a class absent from a training fold gets 0 there
    return probs / probs.sum(axis=1, keepdims=True)


def _same_features(a: np.ndarray, b: np.ndarray, rows: int = 64) -> bool:
    """Whether two layers give the same pooled features (e.g. a head layer and its global-average-pooled output)."""
    return a.shape == b.shape and np.array_equal(np.asarray(a[:rows]), np.asarray(b[:rows]))


def layer_probe(layers: dict[str, np.ndarray], y: np.ndarray, n_classes: int, config: CurateConfig,
                progress: StageProgress | None = None) -> tuple[np.ndarray, dict]:
    """The probe's out-of-fold probabilities, averaged over the layers it fits best, and what it used.

    Each candidate layer (``layers``: name → (N, D) features; layers with identical features counted once) gets
    its own cross-validated probe; the ``config.probe_layers`` layers with the highest out-of-fold accuracy on the
    given labels are averaged. Only the running best layers' probabilities are kept: memory is O(N × classes).
    """
    names, twins = [], {}
    for name, feats in layers.items():
        twin = next((n for n in names if _same_features(layers[n], feats)), None)
        if twin:
            twins[name] = twin
        else:
            names.append(name)
    best: list[tuple[float, int, str, np.ndarray]] = []
    accuracy = {}
    for i, name in enumerate(names):
        if progress:
            progress("cross-validated probe", i, len(names))
        probs = oof_probabilities(probe_inputs(layers[name], config.probe_dim, config.seed), y, n_classes, config)
        accuracy[name] = round(float((probs.argmax(axis=1) == y).mean()), 4)
        best.append((-accuracy[name], i, name, probs))
        best = sorted(best, key=lambda b: (b[0], b[1]))[: config.probe_layers]
    if progress:
        progress("cross-validated probe", len(names), len(names))
    used = [b[2] for b in best]
    probs = np.mean([b[3] for b in best], axis=0)
    info = {"layers": used, "candidates": names, "same_as": twins, "cv_accuracy": accuracy,
            "cv_accuracy_used": round(float((probs.argmax(axis=1) == y).mean()), 4),
            "method": f"shrinkage LDA on PCA-{config.probe_dim}, {config.folds}-fold out-of-fold probabilities, "
                      f"averaged over the {len(used)} layer(s) with the best out-of-fold accuracy on the given labels"}
    return probs, info


def model_probe(per_model: dict[str, dict[str, np.ndarray]], y: np.ndarray, n_classes: int, config: CurateConfig,
                progress: StageProgress | None = None) -> tuple[np.ndarray, dict]:
    """:func:`layer_probe` for each model (model name → its candidate layers), the probabilities averaged.

    One model gives exactly :func:`layer_probe`'s result. With several, the info names layers ``model:layer`` and
    keeps each model's own summary under ``models``.
    """
    runs = {m: layer_probe(layers, y, n_classes, config, progress) for m, layers in per_model.items()}
    if len(runs) == 1:
        return next(iter(runs.values()))
    probs = np.mean([p for p, _ in runs.values()], axis=0)
    info = {"layers": [f"{m}:{n}" for m, (_, i) in runs.items() for n in i["layers"]],
            "candidates": [f"{m}:{n}" for m, (_, i) in runs.items() for n in i["candidates"]],
            "same_as": {f"{m}:{a}": f"{m}:{b}" for m, (_, i) in runs.items() for a, b in i["same_as"].items()},
            "cv_accuracy": {f"{m}:{n}": a for m, (_, i) in runs.items() for n, a in i["cv_accuracy"].items()},
            "cv_accuracy_used": round(float((probs.argmax(axis=1) == y).mean()), 4),
            "models": {m: i for m, (_, i) in runs.items()},
            "method": f"shrinkage LDA on PCA-{config.probe_dim}, {config.folds}-fold out-of-fold probabilities; for each of "
                      f"{len(runs)} models the {config.probe_layers} layer(s) with the best out-of-fold accuracy on the "
                      "given labels, all averaged"}
    return probs, info


PROBE_EXTRACT_MAX_IMAGES = 2000  # up to here a pass for the probe's missing layers takes about a minute on 2 cores


def probe_feature_set(loaded, ds: ImageDataset, layer: str, pooling: str = "avg",
                      progress: Callable[[int, int], None] | None = None) -> tuple[dict[str, np.ndarray], str | None]:
    """The chosen layer's features and the other layers the probe may choose from, plus a note (or None).

    Missing layers are computed, all in one forward pass, when the chosen layer must be computed anyway or the
    dataset has at most ``PROBE_EXTRACT_MAX_IMAGES`` images. A larger dataset whose chosen layer is cached uses only
    the layers already cached (no second pass over its images just for the probe) and the note says so. An adapted
    model offers its own layer only. The chosen layer comes first (it wins ties).
    """
    from . import cache
    from .features import extract_features, feature_key

    if getattr(loaded, "adapted", None) is not None:
        return extract_features(loaded, ds, [layer], pooling, progress=progress), None
    names = list(loaded.spec.all_layers)
    digest = ds.digest()
    cached = [n for n in names if cache.load_matrix("features", feature_key(digest, loaded, n, pooling)) is not None]
    wanted = names if layer not in cached or len(ds.items) <= PROBE_EXTRACT_MAX_IMAGES else cached
    feats = extract_features(loaded, ds, wanted, pooling, progress=progress)
    note = None
    if len(wanted) < len(names):
        missing = [n for n in names if n not in wanted]
        note = (f"the label-issue probe chose among {loaded.spec.name}'s cached layers only ({', '.join(wanted)}); "
                f"{', '.join(missing)} are not cached (python -m cnnviz precompute --model {loaded.spec.name}, whose default is "
                "every layer, caches them)")
    return {layer: feats[layer], **{n: feats[n] for n in wanted if n != layer}}, note


# --- cleanlab --------------------------------------------------------------------------------------------------

LABEL_FILTER = "low_self_confidence"  # cleanlab's filter_by: see label_issues


def label_issues(y: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's label issues: (is_issue mask, label quality score per image; lower = more likely wrong).

    ``cleanlab.filter.find_label_issues`` rather than Datalab's label check: on tiny folders (a few images per
    class) Datalab's noise-matrix estimate flagged nothing even when the flipped images were exactly the
    lowest-scored ones. ``filter_by="low_self_confidence"``: confident learning estimates how many labels are wrong
    (``cleanlab.count.num_label_issues``) and that many images with the lowest self-confidence are flagged, the
    same score the list is ranked by, so the flagged list is exactly the ranking's head. The default ``prune_by_noise_rate`` picks by margin instead, so
    some of the lowest-ranked images went unflagged while higher ones were flagged; on the sample sets with
    flipped labels the filter here ranked the flips as well or better, and on 10k Fashion-MNIST it flagged fewer
    images (docs/curate.md).
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    mask = find_label_issues(y, pred_probs, filter_by=LABEL_FILTER, n_jobs=1)  # no worker processes
    return np.asarray(mask, bool), get_label_quality_scores(y, pred_probs, method="self_confidence")


def run_datalab(graph, k: int) -> dict:
    """cleanlab Datalab's near_duplicate and outlier issues from our kNN graph (it never builds its own)."""
    from cleanlab import Datalab

    lab = Datalab(data={"row": np.arange(graph.shape[0])}, verbosity=0)
    with contextlib.redirect_stdout(io.StringIO()):  # cleanlab prints progress; CLI --json output stays clean
        lab.find_issues(knn_graph=graph, issue_types={"near_duplicate": {"k": k}, "outlier": {"k": k}})
    return {
        "near_duplicate_sets": lab.get_info("near_duplicate")["near_duplicate_sets"],
        "outlier": lab.get_issues("outlier"),
    }


# --- pairs, groups, scores -----------------------------------------------------------------------------------

def cosine_distance(features: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    fa, fb = np.asarray(features[a], np.float64), np.asarray(features[b], np.float64)
    na, nb = np.linalg.norm(fa, axis=1), np.linalg.norm(fb, axis=1)
    return np.maximum(1.0 - (fa * fb).sum(1) / np.maximum(na * nb, 1e-12), 0.0)


def duplicate_pairs(shas: Sequence[str], phashes: np.ndarray, nbr_idx: np.ndarray, dup_sets: Sequence,
                    phash_bits: int, phash_nn_bits: int | None = None) -> dict[tuple[int, int], str]:
    """(a, b) with a < b → the strongest kind of duplicate evidence: exact > perceptual > features.

    Groups of identical file content or identical hash are chained to their first member (m − 1 pairs, not m²).
    """
    pairs: dict[tuple[int, int], str] = {}

    def add(a: int, b: int, kind: str) -> None:
        key = (min(a, b), max(a, b))
        if a != b and (key not in pairs or KIND_ORDER[kind] < KIND_ORDER[pairs[key]]):
            pairs[key] = kind

    first: dict = {}
    for i, s in enumerate(shas):
        add(first.setdefault(s, i), i, "exact")
    first = {}
    for i, h in enumerate(phashes.tolist()):
        add(first.setdefault(h, i), i, "perceptual")
    bits = hamming(phashes[:, None], phashes[nbr_idx])  # each row against its feature neighbours
    close = bits <= phash_bits
    close[:, 0] |= bits[:, 0] <= (phash_bits if phash_nn_bits is None else phash_nn_bits)
    for a, b in zip(*np.nonzero(close)):
        add(int(a), int(nbr_idx[a, b]), "perceptual")
    for a, members in enumerate(dup_sets):
        for b in np.asarray(members).tolist():
            add(a, int(b), "features")
    return pairs


def duplicate_groups(n: int, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Union-find root (smallest index) of every row; a row is redundant when its root is another row."""
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)])


def query_scores(nbr_idx: np.ndarray, labels: np.ndarray, k: int, excluded: np.ndarray | None = None,
                 requery: Callable[[np.ndarray, int], np.ndarray] | None = None) -> np.ndarray:
    """Search score (0–100) of every row as the query; with ``excluded``, as if those rows were not in the dataset.

    Excluded rows are neither queries (their score is NaN) nor results. Rows left with fewer than k kept
    neighbours in ``nbr_idx`` are searched again with more neighbours through ``requery(rows, k)``.
    """
    n = len(nbr_idx)
    excluded = np.zeros(n, bool) if excluded is None else excluded
    n_kept = int((~excluded).sum())
    want = min(k, n_kept - 1)
    w = position_weights(k)
    out = np.full(n, np.nan)
    if want <= 0:
        return out
    nbr = nbr_idx
    short = np.flatnonzero(~excluded & ((~excluded[nbr]).sum(axis=1) < want))
    more = {}
    wide = nbr.shape[1]
    while len(short) and requery is not None:
        wide = min(2 * wide, n - 1)
        found = requery(short, wide)
        still = (~excluded[found]).sum(axis=1) < want
        more.update({int(r): row for r, row in zip(short[~still], found[~still])})
        if wide >= n - 1:
            more.update({int(r): row for r, row in zip(short[still], found[still])})
            break
        short = short[still]
    keep = ~excluded[nbr]
    rank = np.cumsum(keep, axis=1)
    use = keep & (rank <= want)
    weight = np.where(use, w[np.clip(rank - 1, 0, k - 1)], 0.0)
    hits = labels[nbr] == labels[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(excluded, np.nan, 100.0 * ((weight * hits).sum(axis=1) / weight.sum(axis=1)))  # ratio first
    for q, row in more.items():
        kept = row[~excluded[row]][:want]
        out[q] = 100.0 * float((w[: len(kept)] * (labels[kept] == labels[q])).sum() / w[: len(kept)].sum())
    return out


# --- the whole curation ----------------------------------------------------------------------------------------

def curate_features(ds: ImageDataset, features: np.ndarray, index, config: CurateConfig = CurateConfig(),
                    progress: StageProgress | None = None,
                    probe_features: dict[str, dict[str, np.ndarray]] | None = None) -> dict:
    """Label issues, duplicates, outliers, leaks, per-class summary and the what-if score of one dataset.

    ``features`` are one layer's (N, D) features of ``ds``; ``index`` answers ``search(queries, k, exclude=)``
    over them with ``config.metric``. Neighbours, duplicates, outliers and scores use them. The label-issue probe
    chooses among ``probe_features`` (model name → layer name → (N, D), the same images; several models are
    averaged, see :func:`model_probe`; default: ``features`` alone).
    Returns plain data (the CLI's JSON), every list most likely first.
    """
    started = time.perf_counter()
    n = len(ds.items)
    if n < 3:
        from .errors import DatasetError

        raise DatasetError(f"{ds.name}: curation needs at least 3 images (found {n})")
    ids = ds.ids
    layout = dataset_layout(ds)
    notes = [layout.note] if layout.note else []
    shas, phashes = file_hashes(ds, progress)
    nbr_idx, nbr_dist = neighbours(features, index, max(config.k, config.score_k) + 15, progress)

    labels = layout.labels
    labelled = all(lab is not None for lab in labels)
    classes = sorted({lab for lab in labels if lab is not None})
    y = probs = probe = None
    if not labelled:
        missing = sum(lab is None for lab in labels)
        notes.append(f"no label issues: {missing} of {n} images have no class (label issues and scores need one "
                     "sub-folder per class); duplicates and outliers are still found")
    elif len(classes) < 2:
        notes.append("no label issues: the dataset has a single class")
        labelled = False
    else:
        y = np.array([classes.index(lab) for lab in labels])
        probs, probe = model_probe(probe_features or {"model": {"features": features}}, y, len(classes), config, progress)
    if progress:
        progress("cleanlab", 0, 1)
    lab = run_datalab(knn_graph(nbr_idx, nbr_dist, config.k), config.k)
    issues = []
    is_label_issue = np.zeros(n, bool)
    if labelled:
        is_label_issue, score = label_issues(y, probs)
        suggested = probs.argmax(axis=1)
        for i in sorted(np.flatnonzero(is_label_issue), key=lambda i: (score[i], i)):
            issues.append({"id": ids[i], "given": classes[y[i]], "suggested": classes[suggested[i]],
                           "confidence": round(1.0 - float(score[i]), 4)})
    if progress:
        progress("cleanlab", 1, 1)

    out_df = lab["outlier"]
    is_outlier = out_df["is_outlier_issue"].to_numpy(bool)
    out_score = out_df["outlier_score"].to_numpy(float)
    outliers = [{"id": ids[i], "score": round(float(out_score[i]), 4)}
                for i in sorted(np.flatnonzero(is_outlier), key=lambda i: (out_score[i], i))]

    pairs = duplicate_pairs(shas, phashes, nbr_idx[:, : config.k], lab["near_duplicate_sets"], config.phash_bits,
                            config.phash_nn_bits)
    keys = sorted(pairs)
    dists = cosine_distance(features, np.array([a for a, _ in keys], int), np.array([b for _, b in keys], int)) if keys else []
    rows = sorted(((KIND_ORDER[pairs[p]], float(d), p) for p, d in zip(keys, dists)), key=lambda r: (r[0], r[1], r[2]))
    near_duplicates = [{"a": ids[a], "b": ids[b], "distance": round(d, 6), "kind": pairs[(a, b)]} for _, d, (a, b) in rows]
    leaks = []
    if layout.splits is not None:
        leaks = [{"a": ids[a], "b": ids[b], "a_split": layout.splits[a], "b_split": layout.splits[b],
                  "distance": round(d, 6), "kind": pairs[(a, b)]}
                 for _, d, (a, b) in rows if layout.splits[a] != layout.splits[b]]

    roots = duplicate_groups(n, keys)
    redundant = roots != np.arange(n)
    class_summary, what_if = [], None
    if labelled:

        def requery(rows_: np.ndarray, k: int) -> np.ndarray:
            return index.search(np.asarray(features[rows_]), k, exclude=rows_)[0]

        scores = query_scores(nbr_idx, y, config.score_k, None, requery)
        excluded = is_label_issue | is_outlier | redundant
        kept_scores = query_scores(nbr_idx, y, config.score_k, excluded, requery)
        for ci, c in enumerate(classes):
            mask = y == ci
            class_summary.append({"class": c, "n": int(mask.sum()),
                                  "label_issue_rate": round(float(is_label_issue[mask].mean()), 4),
                                  "mean_score": round(float(np.nanmean(scores[mask])), 3)})
        class_summary.sort(key=lambda r: (-r["label_issue_rate"], r["mean_score"], r["class"]))
        what_if = {"metric": config.metric, "k": config.score_k, "original": round(float(np.nanmean(scores)), 3),
                   "without_flagged": round(float(np.nanmean(kept_scores)), 3) if (~excluded).sum() > 1 else None,
                   "n_queries_original": n, "n_queries_without": int((~excluded).sum()),
                   "excluded": {"label_issues": int(is_label_issue.sum()), "outliers": int(is_outlier.sum()),
                                "duplicates": int(redundant.sum()), "total": int(excluded.sum())}}
    return {
        "dataset": ds.name, "n_images": n, "classes": classes if labelled else [],
        "label_issues": issues, "near_duplicates": near_duplicates, "outliers": outliers,
        "class_summary": class_summary, "leaks": leaks, "what_if": what_if, "probe": probe,
        "split_layout": layout.splits is not None, "notes": notes,
        "settings": config.to_dict(), "seconds": round(time.perf_counter() - started, 2),
    }


def probe_summary(curation: dict) -> str | None:
    """One line on the label-issue probe: the layers it used and their out-of-fold accuracy on the given labels."""
    probe = curation.get("probe")
    if not probe:
        return None
    acc = probe["cv_accuracy"]
    used = ", ".join(f"{n} ({acc[n]:.0%})" for n in probe["layers"])
    return (f"label-issue probe: {used}, out-of-fold accuracy on the given labels; chosen from "
            f"{len(probe['candidates'])} layer(s), averaged: {probe['cv_accuracy_used']:.0%}")


def result_flags(curation: dict | None, query_id: str | None, hit_ids: Sequence[str]) -> dict[str, str]:
    """Short marks for search results: a suspected label error, or a duplicate of the query."""
    if not curation:
        return {}
    wanted = set(hit_ids)
    flags: dict[str, str] = {}
    for r in curation.get("label_issues", []):
        if r["id"] in wanted:
            flags[r["id"]] = f"label? {r['given']} → {r['suggested']}"
    for r in curation.get("near_duplicates", []):
        other = r["b"] if r["a"] == query_id else r["a"] if r["b"] == query_id else None
        if other in wanted:
            flags[other] = "duplicate of the query" + (f"; {flags[other]}" if other in flags else "")
    return flags


# --- disk cache ------------------------------------------------------------------------------------------------

def curation_key(features_key: str, config: CurateConfig = CurateConfig()) -> str:
    """Cache key of a curation: the features' key (dataset content, model identity, layer, pooling) and settings."""
    from . import cache

    return cache.make_key("curate", features=features_key, settings=config.to_dict(), version=CURATE_VERSION)


def curation_path(key: str):
    """Where a curation result with this key is (or would be) cached."""
    from . import cache

    return cache.entry_dir("curate") / f"{key}.json"


def load_curation(key: str) -> dict | None:
    """A cached curation result, or None (a missing or unreadable entry; an unreadable one is removed)."""
    import json

    from . import cache

    path = curation_path(key)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("key") != key:
            raise ValueError("key mismatch")
    except (OSError, ValueError):
        cache.safe_remove(path)
        return None
    cache.mark_used(path)
    return data["result"]


def save_curation(key: str, result: dict) -> None:
    from . import cache

    cache.write_json_atomic(curation_path(key), {"key": key, "result": result})
