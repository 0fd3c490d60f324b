"""Adapt search to a labelled dataset: a projection trained on frozen, cached features.

The base model's pooled features of one layer, or of all its layers side by side
(``--layer all``, the default: each layer standardised and weighted equally), are
read from the feature cache (extracted once). A stratified split by image (fixed seed) holds out a share
of every class; only training images are used to fit:

* ``lda``: linear discriminant analysis (scikit-learn, closed form, shrinkage);
* ``linear-*`` / ``mlp-*``: a linear or one-hidden-layer projection trained
  with TensorFlow on a ``triplet`` (batch-hard), ``supcon`` (supervised
  contrastive) or ``proxy`` (normalised-softmax proxies) loss.

Before and after are measured only on the held-out images, each searching
only among the other held-out images (:func:`cnnviz.scoring.evaluate_retrieval`,
cosine, k = 15). The projection is saved in the cache (kind ``adapted``, key =
base model identity + layer + training config + dataset digest) and is then a
model like any other (``efficientnet_lite0+stamps``): its features are the
projection of the base model's cached features (nothing is extracted again),
and its Keras model (base → pooled layer → projection) serves uploaded and
cropped queries and the timing benchmark.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import cache
from .errors import CnnvizError, DatasetError, UnknownNameError
from .progress import Progress

log = logging.getLogger(__name__)

KIND = "adapted"
ADAPTED_LAYER = "adapted"
ADAPT_VERSION = 1  # bump when training or the saved format changes
LOSSES = ("proxy", "supcon", "triplet")
FINETUNE = "finetune"  # the base model's last block + an MLP projection, trained (cnnviz.adapt_finetune)
METHODS = ("lda",) + tuple(f"{head}-{loss}" for head in ("linear", "mlp") for loss in LOSSES) + (FINETUNE,)
DEFAULT_METHOD = "mlp-supcon"  # best mean held-out gain over the 3 sample sets (docs/adapt.md)
DEFAULT_EPOCHS = 150
FINETUNE_EPOCHS = 40  # epochs of block + head together (after a short head-only start): ~1 s per 128 images here

DEFAULT_LAYER = "all"  # every tap of the base model, pooled, side by side (measured best: docs/adapt.md)
POOLINGS = ("avg", "max")
DEFAULT_POOLING = "max"  # max-pooled taps searched best after adapting (docs/adapt.md)
EVAL_METRIC, EVAL_K = "cosine", 15
OUT_DIM, HIDDEN = 128, 512
LDA_MAX_BASIS = 512  # PCA directions kept before LDA
LDA_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 32.0)  # weight of the LDA directions next to the PCA view (chosen on training rows)
SUPCON_TEMPERATURE = 0.1
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$")

EpochCallback = Callable[[int, int, float], None]  # (epoch, epochs, training loss)


class AdaptError(CnnvizError):
    """Adaptation refused (unlabelled data, too few images, a bad name or method)."""


# --- the split -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Split:
    """Row indices of training and held-out images (disjoint, sorted)."""

    train: np.ndarray
    test: np.ndarray

    def check_disjoint(self) -> None:
        if np.intersect1d(self.train, self.test).size:
            raise AssertionError("a held-out image is in the training split")


def stratified_split(labels: Sequence, holdout: float = 0.5, seed: int = 0) -> Split:
    """Per class, ``round(holdout × n)`` images (a seeded shuffle) are held out, the rest train.

    A class with one image goes to the held-out side when ``holdout ≥ 0.5`` (its label is then unseen in
    training, and reported as such).
    """
    if not 0 < holdout < 1:
        raise AdaptError(f"--holdout must be between 0 and 1 (exclusive), got {holdout}")
    rng = np.random.default_rng(seed)
    lab = np.asarray([str(v) for v in labels], dtype=object)
    train, test = [], []
    for cls in sorted(set(lab)):
        rows = np.flatnonzero(lab == cls)
        rows = rows[rng.permutation(len(rows))]
        n_test = int(np.floor(holdout * len(rows) + 0.5))
        test.extend(rows[:n_test])
        train.extend(rows[n_test:])
    split = Split(np.sort(np.asarray(train, int)), np.sort(np.asarray(test, int)))
    split.check_disjoint()
    return split


# --- the projection ------------------------------------------------------------------------------------------

@dataclass
class Projection:
    """Affine layers (``relu`` between them) then L2 normalisation; standardisation is folded into layer 1."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]

    @property
    def in_dim(self) -> int:
        return int(self.weights[0].shape[0])

    @property
    def dim(self) -> int:
        return int(self.weights[-1].shape[1])

    def __call__(self, x: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """Projected, unit-length float32 rows (in chunks, so a memory-mapped matrix is never copied whole)."""
        out = np.empty((len(x), self.dim), np.float32)
        for s in range(0, len(x), chunk):
            h = np.asarray(x[s : s + chunk], np.float32)
            for i, (w, b) in enumerate(zip(self.weights, self.biases)):
                h = h @ w + b
                if i < len(self.weights) - 1:
                    h = np.maximum(h, 0.0)
            out[s : s + chunk] = h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            out[f"w{i}"], out[f"b{i}"] = w.astype(np.float32), b.astype(np.float32)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Projection:
        n = len([k for k in arrays if k.startswith("w")])
        return cls([arrays[f"w{i}"] for i in range(n)], [arrays[f"b{i}"] for i in range(n)])


def default_epochs(method: str) -> int:
    """Training epochs of a method when none are given (``finetune``: epochs of block + head together)."""
    return FINETUNE_EPOCHS if method == FINETUNE else DEFAULT_EPOCHS


def adamw_update(params, grads, moments, t, lrs: Sequence[float], weight_decay: float) -> None:
    """One AdamW step (β 0.9 / 0.999, ε 1e-7, decoupled weight decay) written out in TensorFlow, so training
    does not depend on the Keras backend (which may be JAX). ``moments``: a (m, v) pair of variables per
    parameter; ``t``: the step counter variable; ``lrs``: a learning rate per parameter."""
    import tensorflow as tf

    t.assign_add(1.0)
    for var, g, lr, (m, v) in zip(params, grads, lrs, moments):
        m.assign(0.9 * m + 0.1 * g)
        v.assign(0.999 * v + 0.001 * tf.square(g))
        m_hat, v_hat = m / (1.0 - tf.pow(0.9, t)), v / (1.0 - tf.pow(0.999, t))
        var.assign_sub(lr * (m_hat / (tf.sqrt(v_hat) + 1e-7) + weight_decay * var))


def _standardizer(x: np.ndarray, blocks: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Training mean and scale per dimension. With ``blocks`` (the widths of concatenated layers), each layer's
    dimensions are also divided by √width, so every layer weighs the same whatever its number of channels."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-6, scale, 1.0)
    if blocks is not None:
        if sum(blocks) != x.shape[1]:
            raise ValueError(f"layer widths {list(blocks)} do not add up to {x.shape[1]} features")
        scale = scale * np.repeat(np.sqrt(np.asarray(blocks, float)), blocks)
    return mean, scale


def _lda_parts(x: np.ndarray, y: np.ndarray, blocks: Sequence[int] | None) -> tuple[np.ndarray, ...]:
    """Standardisation, the PCA basis of the training images and the LDA directions (C − 1) within it."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    mean, scale = _standardizer(x, blocks)
    z = (x - mean) / scale
    # The training images span at most n − 1 directions: do LDA in that PCA basis (same solution on the
    # training data, a much smaller eigenproblem when there are fewer images than dimensions).
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    basis = vt[: min(len(z) - 1, z.shape[1], LDA_MAX_BASIS)].T
    # LDA within the top n − C directions: the within-class scatter has rank n − C, so it stays invertible.
    n_classes = len(np.unique(y))
    lda_basis = basis[:, : max(1, min(basis.shape[1], len(z) - n_classes))]
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(z @ lda_basis, y)
    dims = min(n_classes - 1, lda_basis.shape[1])
    w_lda = lda_basis @ lda.scalings_[:, :dims]
    # Each part scaled to unit mean row length on the training images, so ``weight`` means the same everywhere.
    basis = basis / np.linalg.norm(z @ basis, axis=1).mean()
    w_lda = w_lda / max(float(np.linalg.norm(z @ w_lda, axis=1).mean()), 1e-12)
    return mean, scale, basis, w_lda


def _lda_projection(parts: tuple[np.ndarray, ...], weight: float) -> Projection:
    """[PCA view of the standardised input, weight × LDA]: cosine = a blend of the two (weight 0: no LDA)."""
    mean, scale, basis, w_lda = parts
    w = np.hstack([basis, weight * w_lda])
    # z is centred on the training mean, so z·W = x·(W/s) − (m/s)·W.
    return Projection([(w / scale[:, None]).astype(np.float32)], [(-(mean / scale) @ w).astype(np.float32)])


def choose_lda_weight(x: np.ndarray, y: np.ndarray, blocks: Sequence[int] | None = None, seed: int = 0) -> float:
    """The LDA weight of :data:`LDA_WEIGHTS` that searches best in a 2-fold cross-validation on the TRAINING
    rows (fit on one half, search within the other, and the other way round). Only the rows given are used."""
    inner = stratified_split(y, 0.5, seed)
    scores = np.zeros(len(LDA_WEIGHTS))
    for fit_rows, val_rows in ((inner.train, inner.test), (inner.test, inner.train)):
        n_classes = len(np.unique(y[fit_rows]))
        if n_classes < 2 or len(fit_rows) <= n_classes or len(val_rows) < 2:  # too few to validate: plain blend
            return 1.0
        parts = _lda_parts(x[fit_rows], y[fit_rows], blocks)
        scores += [held_out_scores(_lda_projection(parts, w)(x[val_rows]), y[val_rows])["mean_score"]
                   for w in LDA_WEIGHTS]
    return float(LDA_WEIGHTS[int(np.argmax(scores))])


def fit_lda(x: np.ndarray, y: np.ndarray, blocks: Sequence[int] | None = None, seed: int = 0,
            weight: float | None = None) -> Projection:
    """LDA (eigen solver, Ledoit-Wolf shrinkage: stable with more dimensions than images), C − 1 directions,
    side by side with the PCA view of the standardised input; the LDA weight is chosen on the training rows
    (:func:`choose_lda_weight`) unless given. C − 1 directions alone lose the within-class structure that
    ranks a large, already well-separated set (−5 points on 1,000 Fashion-MNIST images); the blend keeps it."""
    if len(np.unique(y)) < 2:
        raise AdaptError("LDA needs at least two classes in the training split")
    if len(y) <= len(np.unique(y)):
        raise AdaptError(f"LDA needs more training images than classes ({len(y)} images, {len(np.unique(y))} classes)")
    if weight is None:
        weight = choose_lda_weight(x, y, blocks, seed)
    return _lda_projection(_lda_parts(x, y, blocks), weight)


def _loss_fn(loss: str, n_classes: int):
    import tensorflow as tf

    def proxy(z, y, proxies):
        p = tf.math.l2_normalize(proxies, axis=1)
        logits = 16.0 * tf.matmul(z, p, transpose_b=True)  # temperature 1/16 on cosine similarities
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))

    def supcon(z, y, _):
        n = tf.shape(z)[0]
        sim = tf.matmul(z, z, transpose_b=True) / SUPCON_TEMPERATURE
        self_mask = tf.eye(n, dtype=tf.bool)
        sim = tf.where(self_mask, tf.fill(tf.shape(sim), -1e9), sim)
        log_prob = sim - tf.reduce_logsumexp(sim, axis=1, keepdims=True)
        pos = tf.logical_and(tf.equal(y[:, None], y[None, :]), tf.logical_not(self_mask))
        pos_f = tf.cast(pos, z.dtype)
        n_pos = tf.reduce_sum(pos_f, axis=1)
        per_anchor = -tf.reduce_sum(tf.where(pos, log_prob, 0.0), axis=1) / tf.maximum(n_pos, 1.0)
        has = tf.cast(n_pos > 0, z.dtype)
        return tf.reduce_sum(per_anchor * has) / tf.maximum(tf.reduce_sum(has), 1.0)

    def triplet(z, y, _):
        d = 1.0 - tf.matmul(z, z, transpose_b=True)  # cosine distance
        n = tf.shape(z)[0]
        same = tf.equal(y[:, None], y[None, :])
        pos = tf.logical_and(same, tf.logical_not(tf.eye(n, dtype=tf.bool)))
        hardest_pos = tf.reduce_max(tf.where(pos, d, -1.0), axis=1)
        hardest_neg = tf.reduce_min(tf.where(same, 4.0, d), axis=1)
        has = tf.cast(tf.reduce_any(pos, axis=1), z.dtype)
        per = tf.nn.relu(hardest_pos - hardest_neg + 0.2) * has
        return tf.reduce_sum(per) / tf.maximum(tf.reduce_sum(has), 1.0)

    return {"proxy": proxy, "supcon": supcon, "triplet": triplet}[loss]


def fit_learned(x: np.ndarray, y: np.ndarray, head: str, loss: str, epochs: int, seed: int = 0,
                on_epoch: EpochCallback | None = None, batch_size: int = 1024,
                weight_decay: float = 1e-4, lr: float = 1e-3,
                blocks: Sequence[int] | None = None) -> tuple[Projection, list[float]]:
    """Train a linear or MLP projection on standardised features with one of :data:`LOSSES`.

    The first layer starts from the top principal directions of the training features (whitened), so
    training starts from a PCA view of the frozen embedding rather than from noise. Returns the projection
    and the mean training loss of each epoch.
    """
    import tensorflow as tf

    classes, y_idx = np.unique(y, return_inverse=True)
    mean, scale = _standardizer(x, blocks)
    z = ((x - mean) / scale).astype(np.float32)
    rng = np.random.default_rng(seed)
    tf.random.set_seed(seed)
    d_in = z.shape[1]
    out_dim = min(OUT_DIM, d_in)
    # PCA start: the top right-singular vectors of the standardised training features.
    _, s, vt = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
    k = min(out_dim, vt.shape[0])
    pca = np.zeros((d_in, out_dim), np.float32)
    pca[:, :k] = vt[:k].T.astype(np.float32)  # orthonormal: distances as in the top-k PCA view
    if head == "linear":
        shapes = [(d_in, out_dim)]
        init = [pca]
    else:
        shapes = [(d_in, HIDDEN), (HIDDEN, out_dim)]
        glorot = lambda a, b: rng.normal(0, np.sqrt(2.0 / (a + b)), (a, b)).astype(np.float32)  # noqa: E731
        init = [glorot(d_in, HIDDEN), glorot(HIDDEN, out_dim)]
    ws = [tf.Variable(w) for w in init]
    bs = [tf.Variable(np.zeros(s[1], np.float32)) for s in shapes]
    emb0 = np.maximum(z @ init[0], 0) @ init[1] if head == "mlp" else z @ init[0]
    emb0 /= np.maximum(np.linalg.norm(emb0, axis=1, keepdims=True), 1e-12)
    centres = np.stack([emb0[y_idx == c].mean(axis=0) for c in range(len(classes))]).astype(np.float32)
    proxies = tf.Variable(centres)
    params = ws + bs + ([proxies] if loss == "proxy" else [])
    loss_of = _loss_fn(loss, len(classes))
    moments = [(tf.Variable(tf.zeros_like(v)), tf.Variable(tf.zeros_like(v))) for v in params]
    t = tf.Variable(0.0)

    @tf.function(reduce_retracing=True, autograph=False)  # plain Python loops, unrolled when traced
    def step(xb, yb):
        with tf.GradientTape() as tape:
            h = xb
            for i, (w, b) in enumerate(zip(ws, bs)):
                h = tf.matmul(h, w) + b
                if i < len(ws) - 1:
                    h = tf.nn.relu(h)
            value = loss_of(tf.math.l2_normalize(h, axis=1), yb, proxies)
        adamw_update(params, tape.gradient(value, params), moments, t, [lr] * len(params), weight_decay)
        return value

    history = []
    y_all = y_idx.astype(np.int32)
    for epoch in range(epochs):
        order = rng.permutation(len(z))
        losses = []
        for s0 in range(0, len(z), batch_size):
            rows = order[s0 : s0 + batch_size]
            losses.append(float(step(tf.constant(z[rows]), tf.constant(y_all[rows]))))
        history.append(float(np.mean(losses)))
        if on_epoch:
            on_epoch(epoch + 1, epochs, history[-1])
    weights = [w.numpy() for w in ws]
    biases = [b.numpy() for b in bs]
    # Fold the standardisation into the first layer: ((x − m)/s)·W + b = x·(W/s) + (b − (m/s)·W).
    biases[0] = biases[0] - (mean / scale).astype(np.float32) @ weights[0]
    weights[0] = weights[0] / scale[:, None].astype(np.float32)
    return Projection(weights, biases), history


def parse_method(method: str) -> tuple[str, str]:
    """``lda`` → ("lda", ""); ``linear-proxy`` → ("linear", "proxy"); ``finetune`` → ("finetune", "supcon")."""
    if method not in METHODS:
        raise UnknownNameError(f"unknown adapt method {method!r}; choose one of: {', '.join(METHODS)}")
    if method == FINETUNE:
        return FINETUNE, "supcon"
    return ("lda", "") if method == "lda" else tuple(method.split("-", 1))  # type: ignore[return-value]


def fit(x_train: np.ndarray, y_train: np.ndarray, method: str, epochs: int, seed: int,
        on_epoch: EpochCallback | None = None, blocks: Sequence[int] | None = None) -> tuple[Projection, list[float]]:
    """Fit a projection on training rows only (the one entry point for every method).

    ``blocks``: widths of the layers concatenated in ``x_train`` (each layer then weighs the same).
    """
    head, loss = parse_method(method)
    if head == FINETUNE:
        raise AdaptError("finetune trains the model's last block on its cached input maps: use adapt(), not fit()")
    if head == "lda":
        proj = fit_lda(x_train, y_train, None, seed)  # per-dimension standardisation: better for LDA (measured)
        if on_epoch:
            on_epoch(1, 1, float("nan"))
        return proj, []
    return fit_learned(x_train, y_train, head, loss, epochs, seed, on_epoch, blocks=blocks)


# --- the input: one layer or several, side by side ---------------------------------------------------------

def input_layers(spec, layer: str = DEFAULT_LAYER) -> list[str]:
    """The base layers an adaptation reads: ``all`` = the model's 8 taps (its last one pooled is the
    embedding), ``embedding``, one layer name, or a comma list."""
    from .features import resolve_layers

    if layer == "all":
        return list(spec.layers)
    layers = resolve_layers(spec, layer)
    if not layers:
        raise AdaptError("choose at least one layer to adapt")
    return layers


def layer_label(layers: Sequence[str]) -> str:
    return layers[0] if len(layers) == 1 else f"{len(layers)} layers: {', '.join(layers)}"


def stack_layers(feats: dict[str, np.ndarray], layers: Sequence[str],
                 rows: np.ndarray | None = None) -> tuple[np.ndarray, list[int]]:
    """The layers' pooled features side by side (float32; only ``rows`` if given) and each layer's width."""
    parts = [np.asarray(feats[n] if rows is None else feats[n][rows], np.float32) for n in layers]
    return (parts[0] if len(parts) == 1 else np.hstack(parts)), [p.shape[1] for p in parts]


# --- measuring -----------------------------------------------------------------------------------------------

def held_out_scores(features: np.ndarray, labels: Sequence) -> dict:
    """Mean search score, precision@15 and 5-NN accuracy, searching only among these rows."""
    from .scoring import evaluate_retrieval

    rep = evaluate_retrieval(np.asarray(features, np.float32), list(labels), EVAL_METRIC, None, EVAL_K)
    return {"mean_score": rep.mean_score, "precision_at_k": rep.precision, "knn_accuracy": rep.knn_accuracy}


# --- saved adapted models ------------------------------------------------------------------------------------

def default_name(model: str, dataset_name: str) -> str:
    return f"{model}+{re.sub(r'[^A-Za-z0-9_.-]+', '_', dataset_name).strip('_') or 'data'}"


def check_name(name: str) -> str:
    from .models.registry import MODELS

    if not _NAME_OK.match(name):
        raise AdaptError(f"adapted model name {name!r}: use letters, digits and _ . + - (at most 100 characters)")
    if name in MODELS:
        raise AdaptError(f"{name!r} is a registry model; give the adapted model another --name")
    return name


def saved_entries() -> list[dict]:
    """Sidecars of every saved adapted model, newest first (unreadable ones skipped)."""
    d = cache.cache_root() / KIND
    out = []
    for side in sorted(d.glob("*.json")) if d.is_dir() else []:
        if side.name.startswith("."):
            continue
        try:
            meta = json.loads(side.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("version") == ADAPT_VERSION and cache.has_arrays(KIND, side.stem):
            out.append(meta)
    return sorted(out, key=lambda m: m.get("created", 0), reverse=True)


def adapted_names() -> list[str]:
    """Names of the saved adapted models (each name once: the newest)."""
    return list(dict.fromkeys(m["name"] for m in saved_entries()))


def find_entry(name: str) -> dict | None:
    return next((m for m in saved_entries() if m["name"] == name), None)


def _saved_arrays(name: str) -> tuple[dict[str, np.ndarray], dict]:
    """The saved arrays and sidecar of an adapted model (npz + JSON; no pickle)."""
    meta = find_entry(name)
    hit = cache.load_arrays(KIND, meta["key"]) if meta else None
    if hit is None:
        known = adapted_names()
        raise UnknownNameError(f"no adapted model named {name!r}" + (f"; saved: {', '.join(known)}" if known else
                               "; create one with `python -m cnnviz adapt`"))
    return hit


def load_entry(name: str) -> tuple[Projection, dict]:
    arrays, meta = _saved_arrays(name)
    return Projection.from_arrays(arrays), meta  # reads w*/b*: a fine-tuned block's tail* arrays are not read


def load_finetuned(name: str):
    """The trained block and projection of a saved ``finetune`` model."""
    from .adapt_finetune import FineTuned

    arrays, meta = _saved_arrays(name)
    if "tail" not in meta:
        raise UnknownNameError(f"no fine-tuned adapted model named {name!r}")
    return FineTuned.from_arrays(arrays, meta["tail"]), meta


def adapted_spec(name: str):
    """The registry record of a saved adapted model: the base model's layers plus ``adapted``."""
    from .models.registry import get_model_spec
    import dataclasses

    meta = find_entry(name)
    if meta is None:
        raise UnknownNameError(f"unknown model {name!r}")
    base = get_model_spec(meta["model"])
    return dataclasses.replace(
        base, name=name, family=f"{base.family}, adapted", builder="adapted", embedding_layer=ADAPTED_LAYER,
        has_classifier=False, published_top1=None, published_cpu_ms=None,
        weights_source=(f"{meta['model']} ({base.weights_source}) + "
                        + (f"its last block from `{meta['tail']['tap']}` fine-tuned, with an MLP projection of its "
                           f"layers ({meta.get('pooling', 'avg')}-pooled), " if "tail" in meta else
                           f"{meta['method']} projection of `{meta['layer']}` ({meta.get('pooling', 'avg')}-pooled) ")
                        + f"trained here on {meta['dataset']} ({meta['split']['train']} images)"),
        published_source="", keras_app="", keras_weights_file="")


@dataclass(frozen=True)
class AdaptedSource:
    """What an adapted model adds to its base model (held by the built model)."""

    base: Any  # LoadedModel of the base model
    base_layers: tuple[str, ...]  # concatenated, in this order, before the projection
    pooling: str
    projection: Projection = field(compare=False)
    key: str = ""
    finetuned: Any = field(default=None, compare=False)  # adapt_finetune.FineTuned of a ``finetune`` model


def build_adapted(spec, require_weights: bool = True):
    """A :class:`cnnviz.models.build.LoadedModel` of an adapted model: the base graph up to the pooled layer,
    then the projection (Keras, for uploaded queries and timing); ``adapted_features`` serves dataset features
    from the base model's feature cache."""
    import hashlib

    import keras

    from .adapt_finetune import FineTuned
    from .workflows import get_model

    arrays, meta = _saved_arrays(spec.name)  # read once: the projection and, if fine-tuned, the block
    projection = Projection.from_arrays(arrays)
    finetuned = FineTuned.from_arrays(arrays, meta["tail"]) if "tail" in meta else None
    base = get_model(meta["model"], require_weights)
    layers = tuple(entry_layers(meta))
    pool = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D}[meta["pooling"]]
    outputs = {n: base.model.get_layer(n).output for n in layers}
    if finetuned is not None:  # the trained copy of the last block, on the base graph's output at its input tap
        from .adapt_finetune import keras_chain

        outputs.update(keras_chain(base.model.get_layer(finetuned.tap).output, finetuned))
    pooled = []
    for i, n in enumerate(layers):
        t = outputs[n]
        pooled.append(pool(name=f"adapted_pool{i}")(t) if len(t.shape) == 4 else t)
    x = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="adapted_concat")(pooled)
    for i, (w, b) in enumerate(zip(projection.weights, projection.biases)):
        last = i == len(projection.weights) - 1
        dense = keras.layers.Dense(w.shape[1], activation=None if last else "relu", name=f"adapted_dense{i}")
        x = dense(x)
        dense.set_weights([w, b])
    x = keras.layers.UnitNormalization(name=ADAPTED_LAYER)(x)
    model = keras.Model(base.model.inputs, x, name=re.sub(r"[^A-Za-z0-9_]", "_", spec.name))
    sha = hashlib.sha256(f"{base.weights_sha256}:{meta['key']}".encode()).hexdigest() if base.weights_sha256 else ""
    return _adapted_class()(spec, model, base.weights, sha,
                            AdaptedSource(base, layers, meta["pooling"], projection, meta["key"], finetuned))


@functools.cache
def _adapted_class():
    """``AdaptedModel``: a LoadedModel that also holds its :class:`AdaptedSource` (defined lazily: build.py
    imports nothing heavy, but this module is imported by the registry)."""
    from .models.build import LoadedModel

    @dataclass(frozen=True)
    class AdaptedModel(LoadedModel):
        adapted: AdaptedSource | None = field(default=None, compare=False, repr=False)

    return AdaptedModel


def entry_layers(meta: dict) -> list[str]:
    """The base layers a saved adapted model reads (entries saved before multi-layer input name one ``layer``)."""
    return list(meta.get("layers") or [meta["layer"]])


def adapted_source(loaded) -> AdaptedSource | None:
    """The adapted part of a built model, or None for a registry model."""
    return getattr(loaded, "adapted", None)


def adapted_features(loaded, dataset, names: Sequence[str], pooling: str, **extract) -> dict[str, np.ndarray]:
    """Features of an adapted model: base layers from the base model's cache, ``adapted`` = their projection.

    ``adapted`` is a vector, not a feature map: it is the same whatever ``pooling`` is asked for (its input
    layers are pooled as in training, ``src.pooling``); the base layers are pooled as asked.
    """
    from .features import extract_features

    src = adapted_source(loaded)
    wanted = [n for n in names if n != ADAPTED_LAYER]
    base = extract_features(src.base, dataset, wanted, pooling, **extract) if wanted else {}
    out = {}
    for n in names:
        if n == ADAPTED_LAYER and src.finetuned is not None:
            out[n] = _finetuned_features(src, dataset, **extract)
        elif n == ADAPTED_LAYER:
            inputs = extract_features(src.base, dataset, list(src.base_layers), src.pooling, **extract)
            arr = np.empty((len(dataset.items), src.projection.dim), np.float32)
            for s0 in range(0, len(arr), 8192):  # chunks: the base matrices stay memory-mapped
                rows = np.arange(s0, min(s0 + 8192, len(arr)))
                arr[rows] = src.projection(stack_layers(inputs, src.base_layers, rows)[0])
            arr.setflags(write=False)
            out[n] = arr
        else:
            out[n] = base[n]
    return out


def _finetuned_features(src: AdaptedSource, dataset, **extract) -> np.ndarray:
    """A fine-tuned model's features: the trained block run on the cached block-input maps, its taps pooled next
    to the frozen taps' cached pooled features, then the projection (the network before the block never runs
    again once the maps are cached)."""
    from .adapt_finetune import block_input_maps
    from .features import extract_features

    ft = src.finetuned
    frozen_taps = [n for n in src.base_layers if n not in ft.tail_taps]
    frozen = extract_features(src.base, dataset, frozen_taps, src.pooling, **extract) if frozen_taps else {}
    maps = block_input_maps(src.base, dataset, ft.tap, progress=extract.get("progress"))
    arr = np.empty((len(dataset.items), ft.projection.dim), np.float32)
    for s0 in range(0, len(arr), 2048):
        rows = np.arange(s0, min(s0 + 2048, len(arr)))
        fz = stack_layers(frozen, frozen_taps, rows)[0] if frozen_taps else np.zeros((len(rows), 0), np.float32)
        arr[rows] = ft(fz, maps[rows])
    arr.setflags(write=False)
    return arr


# --- the workflow --------------------------------------------------------------------------------------------

def adapt(model: str, dataset: str | None = None, images: str | None = None, layer: str = DEFAULT_LAYER,
          method: str = DEFAULT_METHOD, epochs: int | None = None, holdout: float = 0.5, seed: int = 0,
          name: str | None = None, progress: Progress | None = None,
          on_epoch: EpochCallback | None = None, save: bool = True, pooling: str = DEFAULT_POOLING) -> dict:
    """Train an adapted embedding on the training split and measure it on the held-out split.

    Returns ``{name, model, layer, method, split: {train, test, test_unseen_labels, classes, …},
    before: {mean_score, precision_at_k, knn_accuracy}, after: {…}, seconds, epochs, history, key}``;
    ``seconds`` is the training time alone (features come from the cache). ``before`` is always the base
    model's frozen embedding; the adapted embedding reads ``layer`` (``all``: every tap side by side).
    ``epochs`` None: the method's default (:func:`default_epochs`). ``finetune`` also trains a copy of the
    model's last block on its cached input maps (:mod:`cnnviz.adapt_finetune`); it reads all layers.
    """
    from .data import open_dataset
    from .features import extract_features
    from .models.build import model_identity
    from .workflows import get_model

    head, _ = parse_method(method)
    epochs = default_epochs(method) if epochs is None else int(epochs)
    if head == FINETUNE and layer != "all":
        raise AdaptError("finetune reads all the model's layers (the frozen ones and its trained last block): "
                         f"use --layer all, not {layer!r}")
    if head != "lda" and not 1 <= epochs <= 10_000:
        raise AdaptError(f"--epochs must be between 1 and 10000, got {epochs}")
    ds = open_dataset(dataset, images=images)
    if not ds.labelled:
        raise DatasetError(f"{ds.name}: adapting needs labels (one sub-folder per class)")
    name = check_name(name or default_name(model, ds.name))
    loaded = get_model(model)
    if adapted_source(loaded) is not None:
        raise AdaptError(f"{model} is already an adapted model; adapt its base model {adapted_source(loaded).base.spec.name}")
    if pooling not in POOLINGS:
        raise AdaptError(f"unknown pooling {pooling!r}; choose one of: {', '.join(POOLINGS)}")
    layers = input_layers(loaded.spec, layer)
    emb = loaded.spec.embedding_layer
    plan = None
    if head == FINETUNE:
        from . import adapt_finetune as F

        plan = F.tail_plan(loaded)  # refused (FinetuneError) before any extraction if the block is not a chain
        layers = list(plan.frozen_taps)  # pooled from the cache; the block's own taps come from the trained copy
    feats = extract_features(loaded, ds, list(dict.fromkeys(layers + [emb])), pooling, progress=progress)
    frozen = feats[emb] if pooling == "avg" else extract_features(loaded, ds, [emb], "avg")[emb]
    labels = np.asarray([str(v) for v in ds.labels], dtype=object)
    split = stratified_split(labels, holdout, seed)
    train_labels = set(labels[split.train])
    unseen = int(sum(lab not in train_labels for lab in labels[split.test]))
    if len(split.test) < 2 or len(train_labels) < 2:
        raise AdaptError(f"{ds.name}: {len(split.train)} training and {len(split.test)} held-out images are too few "
                         "(need ≥ 2 classes in training and ≥ 2 held-out images)")
    split.check_disjoint()
    x_train, blocks = stack_layers(feats, layers, split.train)
    y_train = labels[split.train]
    finetuned = None
    if plan is not None:
        maps = F.block_input_maps(loaded, ds, plan.tap, progress=progress)
        t0 = time.perf_counter()
        finetuned, history = F.fit_finetune(
            x_train, maps[split.train], y_train, plan, F.chain_configs(loaded, plan),
            [loaded.model.get_layer(n).get_weights() for n in plan.chain], F.map_shape(loaded, plan.tap), blocks,
            pooling, epochs, seed, on_epoch)
        seconds = time.perf_counter() - t0
        projection = finetuned.projection
        layers = layers + list(plan.tail_taps)
        after_features = finetuned(stack_layers(feats, plan.frozen_taps, split.test)[0], maps[split.test])
    else:
        t0 = time.perf_counter()
        projection, history = fit(x_train, y_train, method, epochs, seed, on_epoch, blocks=blocks)
        seconds = time.perf_counter() - t0
        after_features = projection(stack_layers(feats, layers, split.test)[0])
    before = held_out_scores(np.asarray(frozen[split.test], np.float32), labels[split.test])
    after = held_out_scores(after_features, labels[split.test])
    ids = ds.ids
    digest = ds.digest()
    layer = layers[0] if len(layers) == 1 else "all" if layers == list(loaded.spec.layers) else ",".join(layers)
    config = {"layer": layer, "layers": layers, "pooling": pooling, "method": method, "epochs": epochs if head != "lda" else 0,
              "holdout": holdout, "seed": seed, "out_dim": projection.dim, "version": ADAPT_VERSION}
    if finetuned is not None:
        config["finetune"] = {"tap": plan.tap, "chain": list(plan.chain), "head_start_epochs": F.HEAD_START_EPOCHS,
                              "tail_lr": F.TAIL_LR, "head_lr": F.HEAD_LR, "batch": F.BATCH, "maps": F.MAPS_VERSION}
    key = cache.make_key(KIND, identity=model_identity(loaded), dataset=digest, **config)
    result = {
        "name": name, "model": model, "layer": layer, "layers": layers, "pooling": pooling, "method": method,
        "dataset": ds.name, "before_layer": emb,
        "split": {"train": int(len(split.train)), "test": int(len(split.test)), "test_unseen_labels": unseen,
                  "classes": len(set(labels)), "holdout": holdout, "seed": seed},
        "before": before, "after": after, "seconds": seconds, "epochs": config["epochs"], "dim": projection.dim,
        "history": history, "key": key, "eval": {"metric": EVAL_METRIC, "k": EVAL_K},
    }
    if finetuned is not None:
        result["finetune"] = {"tap": plan.tap, "trained_layers": list(plan.chain),
                              "head_start_epochs": F.HEAD_START_EPOCHS}
    result["replaced"] = False
    if save:
        meta = {**result, "config": config, "dataset_digest": digest, "version": ADAPT_VERSION,
                **({"tail": finetuned.meta()} if finetuned is not None else {}),
                "created": time.time(), "train_ids": [ids[i] for i in split.train],
                "test_ids": [ids[i] for i in split.test]}
        for old in saved_entries():  # one entry per name: a re-adapt under the same name replaces it
            if old["name"] == name:
                result["replaced"] = True
                if old["key"] != key:
                    for suffix in (".npz", ".json"):
                        cache.safe_remove(cache.entry_dir(KIND) / f"{old['key']}{suffix}")
        arrays = finetuned.to_arrays() if finetuned is not None else projection.to_arrays()
        cache.save_arrays(KIND, key, arrays, {**meta, "replaced": result["replaced"]})
        if result["replaced"]:  # a model built from the previous version must not be served again
            get_model.cache_clear()
    return result


def describe_adapted() -> list[dict]:
    """Saved adapted models as rows for ``models`` (no model is built)."""
    rows = []
    for meta in saved_entries():
        if any(r["name"] == meta["name"] for r in rows):
            continue
        rows.append({"name": meta["name"], "base": meta["model"], "layer": meta["layer"], "method": meta["method"],
                     "dataset": meta["dataset"], "dim": meta["dim"], "held_out_before": meta["before"]["mean_score"],
                     "held_out_after": meta["after"]["mean_score"], "held_out_images": meta["split"]["test"]})
    return rows


def held_out_side_by_side(ds, base_features: np.ndarray, adapted_features: np.ndarray, test_ids: Sequence[str],
                          query_id: str, k: int = EVAL_K) -> dict:
    """One held-out query searched among the held-out images, with the frozen embedding (``base_features``)
    and the adapted one (``adapted_features``; both: rows of the whole dataset).

    Returns ``{"query": {id, label, path}, "before": {score, hits}, "after": {score, hits}}``; each hit is
    ``{id, label, path, similarity}``, best first (the query itself excluded).
    """
    from .scoring import search_score
    from .search import ExactIndex

    index_of = {item_id: i for i, item_id in enumerate(ds.ids)}
    rows = np.array([index_of[i] for i in test_ids])
    if query_id not in test_ids:
        raise AdaptError(f"{query_id!r} is not a held-out image of this adapted model")
    q = list(test_ids).index(query_id)
    out = {"query": {"id": query_id, "label": ds.items[rows[q]].label, "path": str(ds.items[rows[q]].path)}}
    for when, all_feats in (("before", base_features), ("after", adapted_features)):
        feats = np.asarray(all_feats[rows], np.float32)
        idx, dist = ExactIndex(feats, EVAL_METRIC).search(feats[q : q + 1], k, exclude=np.array([q]))
        hits = [{"id": ds.items[rows[i]].id, "label": ds.items[rows[i]].label, "path": str(ds.items[rows[i]].path),
                 "similarity": float(1.0 - d)} for i, d in zip(idx[0], dist[0])]
        out[when] = {"score": search_score([h["label"] for h in hits], out["query"]["label"], k), "hits": hits}
    return out
