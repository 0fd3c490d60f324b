"""Fine-tune the base model's last block for search (``adapt --method finetune``).

The base network runs once per image up to the input of its last block (for EfficientNet-Lite0:
``block6d_out``, 7 × 7 × 192); those maps are cached (kind ``features``, like pooled features, so they are
recomputable and evictable). A copy of the last block and the head convolution (``block7a`` … ``head_relu``)
is then trained together with an MLP projection with the supervised-contrastive loss, on the training
rows only. The projection reads the base model's frozen taps before the block (pooled, from the feature
cache) and the trained block's taps (pooled), side by side, as ``--layer all`` does for the other methods.

Training starts from the frozen block and an MLP head trained briefly on its frozen output (20 epochs: a
head trained to convergence leaves the block no gradient), then trains block and head together with a
smaller learning rate for the block. Batch normalisation keeps its ImageNet statistics (an affine layer
here: only its scale and shift train), so the trained block computes the same in training, when serving
dataset features from the cached maps and in the Keras graph that serves uploaded queries.

The block is run here as plain TensorFlow ops translated from the Keras layers (Conv2D, DepthwiseConv2D,
BatchNormalization, ReLU), independent of the Keras backend; a model whose last block is not such a chain
is refused with a message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from . import cache
from .errors import CnnvizError

MAPS_VERSION = 1  # bump when the cached block-input maps change
HEAD_START_EPOCHS = 20  # then block + head together (a fully trained head leaves the block no gradient)
TAIL_LR, HEAD_LR = 3e-4, 1e-3
BATCH = 128
SUPPORTED = ("Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU")

EpochCallback = Callable[[int, int, float], None]


class FinetuneError(CnnvizError):
    """The model's last block cannot be fine-tuned here (not a plain chain of supported layers)."""


@dataclass(frozen=True)
class TailPlan:
    """Where the trained block starts (``tap``: its input, cached), the layers it copies, and the taps
    before it (frozen, pooled from the cache) and inside it (trained, pooled)."""

    tap: str
    chain: tuple[str, ...]  # Keras layer names, in order, from the tap's output to the last tap
    frozen_taps: tuple[str, ...]
    tail_taps: tuple[str, ...]


def tail_plan(loaded) -> TailPlan:
    """The last block of a model: from its third-last tap (EfficientNet-Lite0: ``block6d_out``) to its last
    (``head_relu``). Refused unless every layer between is one supported layer fed by the previous one."""
    spec = loaded.spec
    taps = list(spec.layers)
    tap, end = taps[-3], taps[-1]
    layers = loaded.model.layers
    names = [layer.name for layer in layers]
    i, j = names.index(tap), names.index(end)
    prev, chain = layers[i], []
    for layer in layers[i + 1 : j + 1]:
        kind = type(layer).__name__
        if kind not in SUPPORTED:
            raise FinetuneError(f"{spec.name}: cannot fine-tune its last block: layer {layer.name} is a {kind} "
                                f"(supported: {', '.join(SUPPORTED)})")
        if layer.input is not prev.output:
            raise FinetuneError(f"{spec.name}: cannot fine-tune its last block: {layer.name} does not read "
                                f"{prev.name} alone (the block is not a chain)")
        _check_config(spec.name, layer)
        chain.append(layer.name)
        prev = layer
    return TailPlan(tap, tuple(chain), tuple(taps[: taps.index(tap) + 1]), tuple(taps[taps.index(tap) + 1 :]))


def _check_config(model_name: str, layer) -> None:
    cfg = layer.get_config()
    bad = []
    if cfg.get("data_format", "channels_last") != "channels_last":
        bad.append("data_format")
    if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D"):
        if cfg.get("activation", "linear") not in ("linear", None):
            bad.append("activation")
        if tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1) or cfg.get("groups", 1) != 1:
            bad.append("dilation/groups")
    if type(layer).__name__ == "BatchNormalization" and cfg.get("axis") not in (-1, 3, [3], [-1]):
        bad.append("axis")
    if type(layer).__name__ == "ReLU" and (cfg.get("negative_slope") or cfg.get("threshold")):
        bad.append("leaky/threshold")
    if bad:
        raise FinetuneError(f"{model_name}: cannot fine-tune layer {layer.name} ({', '.join(bad)} not supported)")


# --- the block as TensorFlow ops -----------------------------------------------------------------------------

def chain_configs(loaded, plan: TailPlan) -> list[dict]:
    """The JSON-safe description of each chained layer (saved in the adapted model's sidecar)."""
    out = []
    for n in plan.chain:
        layer = loaded.model.get_layer(n)
        cfg = layer.get_config()
        kind = type(layer).__name__
        d = {"name": n, "type": kind}
        if kind in ("Conv2D", "DepthwiseConv2D"):
            d.update(strides=list(cfg["strides"]), padding=cfg["padding"], use_bias=bool(cfg["use_bias"]))
        elif kind == "BatchNormalization":
            d.update(epsilon=float(cfg["epsilon"]), center=bool(cfg["center"]), scale=bool(cfg["scale"]))
        elif kind == "ReLU":
            d.update(max_value=None if cfg.get("max_value") is None else float(cfg["max_value"]))
        out.append(d)
    return out


def _trainable_count(cfg: dict) -> int:
    """How many of a layer's weights (in Keras ``get_weights`` order) train: BN's moving statistics do not."""
    if cfg["type"] == "BatchNormalization":
        return int(cfg["scale"]) + int(cfg["center"])
    return {"Conv2D": 1, "DepthwiseConv2D": 1, "ReLU": 0}[cfg["type"]] + (int(cfg.get("use_bias", False)))


def apply_chain(x, configs: Sequence[dict], weights: Sequence[Sequence], want: Sequence[str]) -> list:
    """Run the chain on ``x`` (N, H, W, C) with TensorFlow ops; the outputs of the layers named in ``want``."""
    import tensorflow as tf

    outs = {}
    for cfg, ws in zip(configs, weights):
        kind = cfg["type"]
        if kind == "Conv2D":
            x = tf.nn.conv2d(x, ws[0], [1, *cfg["strides"], 1], cfg["padding"].upper())
            if cfg["use_bias"]:
                x = x + ws[1]
        elif kind == "DepthwiseConv2D":
            x = tf.nn.depthwise_conv2d(x, ws[0], [1, *cfg["strides"], 1], cfg["padding"].upper())
            if cfg["use_bias"]:
                x = x + ws[1]
        elif kind == "BatchNormalization":
            i = 0
            gamma = ws[i] if cfg["scale"] else None
            i += int(cfg["scale"])
            beta = ws[i] if cfg["center"] else None
            i += int(cfg["center"])
            mean, var = ws[i], ws[i + 1]
            x = (x - mean) * tf.math.rsqrt(var + cfg["epsilon"])
            if gamma is not None:
                x = x * gamma
            if beta is not None:
                x = x + beta
        else:  # ReLU
            x = tf.nn.relu(x)
            if cfg["max_value"] is not None:
                x = tf.minimum(x, cfg["max_value"])
        if cfg["name"] in want:
            outs[cfg["name"]] = x
    return [outs[n] for n in want]


def _pool(t, pooling: str):
    import tensorflow as tf

    return tf.reduce_max(t, axis=(1, 2)) if pooling == "max" else tf.reduce_mean(t, axis=(1, 2))


# --- the trained model ---------------------------------------------------------------------------------------

@dataclass
class FineTuned:
    """A trained copy of the last block (weights per chained layer) and the projection that follows it."""

    configs: list[dict]
    weights: list[list[np.ndarray]]
    tail_taps: list[str]
    pooling: str
    map_shape: tuple[int, int, int]
    projection: object  # cnnviz.adapt.Projection
    tap: str = ""  # the base layer whose maps the block reads

    def tail_features(self, maps: np.ndarray, chunk: int = 256) -> np.ndarray:
        """The trained block's taps, pooled, side by side, for flat maps (N, H·W·C) (float32)."""
        import tensorflow as tf

        consts = [[tf.constant(w) for w in ws] for ws in self.weights]
        parts = []
        for s in range(0, len(maps), chunk):
            x = tf.constant(np.asarray(maps[s : s + chunk], np.float32).reshape(-1, *self.map_shape))
            outs = apply_chain(x, self.configs, consts, self.tail_taps)
            parts.append(np.hstack([_pool(o, self.pooling).numpy() for o in outs]))
        width = sum(self.tap_widths())
        return np.vstack(parts).astype(np.float32) if parts else np.zeros((0, width), np.float32)

    def tap_widths(self) -> list[int]:
        by_name = {c["name"]: ws for c, ws in zip(self.configs, self.weights)}
        widths, last = [], self.map_shape[-1]
        for c in self.configs:
            ws = by_name[c["name"]]
            if c["type"] == "Conv2D":
                last = ws[0].shape[-1]
            elif c["type"] == "DepthwiseConv2D":
                last = ws[0].shape[2] * ws[0].shape[3]
            if c["name"] in self.tail_taps:
                widths.append(int(last))
        return widths

    def __call__(self, frozen: np.ndarray, maps: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Adapted features from the frozen taps' pooled features and the block-input maps of the same rows."""
        out = np.empty((len(maps), self.projection.dim), np.float32)
        for s in range(0, len(maps), chunk):
            x = np.hstack([np.asarray(frozen[s : s + chunk], np.float32), self.tail_features(maps[s : s + chunk])])
            out[s : s + chunk] = self.projection(x)
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = dict(self.projection.to_arrays())
        for i, ws in enumerate(self.weights):
            for j, w in enumerate(ws):
                out[f"tail{i}_{j}"] = np.asarray(w, np.float32)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], tail_meta: dict) -> FineTuned:
        from .adapt import Projection

        configs = tail_meta["configs"]
        weights = []
        for i in range(len(configs)):
            n = len([k for k in arrays if k.startswith(f"tail{i}_")])
            weights.append([arrays[f"tail{i}_{j}"] for j in range(n)])
        proj = Projection.from_arrays(arrays)  # reads w*/b* only
        return cls(configs, weights, list(tail_meta["tail_taps"]), tail_meta["pooling"],
                   tuple(tail_meta["map_shape"]), proj, tail_meta["tap"])

    def meta(self) -> dict:
        return {"tap": self.tap, "configs": self.configs, "tail_taps": self.tail_taps, "pooling": self.pooling,
                "map_shape": list(self.map_shape), "chain": [c["name"] for c in self.configs]}


def keras_chain(x, ft: FineTuned) -> dict:
    """The trained block as Keras layers on tensor ``x`` (the base graph's output at ``ft.tap``): fresh copies
    of the chained layers (named ``adapted_<layer>``) holding the trained weights. Returns ``{tap: tensor}``
    for the block's taps. Batch normalisation runs in inference mode, as in training."""
    import keras

    classes = {"Conv2D": keras.layers.Conv2D, "DepthwiseConv2D": keras.layers.DepthwiseConv2D,
               "BatchNormalization": keras.layers.BatchNormalization, "ReLU": keras.layers.ReLU}
    outs = {}
    for cfg, ws in zip(ft.configs, ft.weights):
        kind = cfg["type"]
        common = {"name": f"adapted_{cfg['name']}"}
        if kind == "Conv2D":
            k = ws[0]
            layer = classes[kind](k.shape[-1], k.shape[:2], strides=cfg["strides"], padding=cfg["padding"],
                                  use_bias=cfg["use_bias"], **common)
        elif kind == "DepthwiseConv2D":
            k = ws[0]
            layer = classes[kind](k.shape[:2], strides=cfg["strides"], padding=cfg["padding"],
                                  depth_multiplier=k.shape[3], use_bias=cfg["use_bias"], **common)
        elif kind == "BatchNormalization":
            layer = classes[kind](epsilon=cfg["epsilon"], center=cfg["center"], scale=cfg["scale"], **common)
        else:
            layer = classes[kind](max_value=cfg["max_value"], **common)
        x = layer(x)
        if ws:
            layer.set_weights(list(ws))
        if cfg["name"] in ft.tail_taps:
            outs[cfg["name"]] = x
    return outs


# --- block-input maps (cached) -------------------------------------------------------------------------------

def map_key(loaded, dataset_digest: str, tap: str) -> str:
    from .models.build import model_identity

    return cache.make_key("features", dataset=dataset_digest, identity=model_identity(loaded), layer=tap,
                          pooling="none", maps=MAPS_VERSION)


def block_input_maps(loaded, dataset, tap: str, batch_size: int = 32, progress=None) -> np.ndarray:
    """The tap's raw maps (N, H·W·C) of every dataset image, float32, memory-mapped; extracted once."""
    import keras

    from .data.images import load_for_model

    key = map_key(loaded, dataset.digest(), tap)
    hit = cache.load_matrix("features", key)
    n = len(dataset.items)
    if hit is not None:
        if progress:
            progress(n, n)
        return hit
    model = loaded.memo(("adapt-map", tap), lambda: keras.Model(loaded.model.inputs, loaded.model.get_layer(tap).output))
    shape = tuple(int(d) for d in model.output.shape[1:])
    size = loaded.spec.input_size
    meta = {"model": loaded.spec.name, "layer": tap, "pooling": "none", "map_shape": list(shape),
            "dataset": dataset.name, "n_images": n}
    with cache.writing_matrix("features", key, (n, int(np.prod(shape))), meta) as out:
        for s in range(0, n, batch_size):
            rows = range(s, min(s + batch_size, n))
            batch = np.stack([load_for_model(dataset.items[i].path, size, name=dataset.items[i].id) for i in rows])
            out[s : s + len(rows)] = np.asarray(model.predict_on_batch(batch), np.float32).reshape(len(rows), -1)
            if progress:
                progress(s + len(rows), n)
    return cache.load_matrix("features", key)


def map_shape(loaded, tap: str) -> tuple[int, int, int]:
    return tuple(int(d) for d in loaded.model.get_layer(tap).output.shape[1:])  # type: ignore[return-value]


# --- training ------------------------------------------------------------------------------------------------

def fit_finetune(frozen: np.ndarray, maps: np.ndarray, y: np.ndarray, plan: TailPlan, configs: list[dict],
                 weights: list[list[np.ndarray]], shape: tuple[int, int, int],
                 frozen_blocks: Sequence[int], pooling: str, epochs: int = 40, seed: int = 0,
                 on_epoch: EpochCallback | None = None, head_epochs: int = HEAD_START_EPOCHS, tail_lr: float = TAIL_LR,
                 head_lr: float = HEAD_LR, batch_size: int = BATCH, weight_decay: float = 1e-4,
                 ) -> tuple[FineTuned, list[float]]:
    """Train the block (starting from ``weights``) and an MLP projection on TRAINING rows only.

    ``plan``: :func:`tail_plan`; ``configs`` / ``weights``: :func:`chain_configs` and the chained layers'
    starting weights. ``frozen``: the pooled frozen taps (N, D) side by side (widths ``frozen_blocks``); ``maps``: the block's
    input (N, H·W·C) of the same rows. First the MLP head on the frozen block's output (``head_epochs``,
    as ``mlp-supcon``), then block + head together for ``epochs`` epochs. Returns the model and the mean
    training loss per epoch (head epochs first).
    """
    import tensorflow as tf

    tap, tail_taps = plan.tap, plan.tail_taps
    from .adapt import Projection, _loss_fn, _standardizer, adamw_update, fit_learned

    y = np.asarray(y)
    _, y_idx = np.unique(y, return_inverse=True)
    start = FineTuned(configs, [list(map(np.asarray, ws)) for ws in weights], list(tail_taps), pooling, shape, None, tap)
    tail0 = start.tail_features(maps)
    x0 = np.hstack([np.asarray(frozen, np.float32), tail0])
    blocks = list(frozen_blocks) + start.tap_widths()
    mean, scale = _standardizer(x0, blocks)
    total = head_epochs + epochs
    history: list[float] = []

    def head_epoch(e, _n, loss):
        history.append(loss)
        if on_epoch:
            on_epoch(e, total, loss)

    head, _ = fit_learned(x0, y, "mlp", "supcon", head_epochs, seed, head_epoch, blocks=blocks)
    # Unfold the standardisation (fit_learned folds it into layer 1): W = W'·s, b = b' + m·W'.
    w0 = head.weights[0] * scale[:, None].astype(np.float32)
    b0 = head.biases[0] + mean.astype(np.float32) @ head.weights[0]
    hw = [tf.Variable(w0.astype(np.float32)), tf.Variable(head.weights[1])]
    hb = [tf.Variable(b0.astype(np.float32)), tf.Variable(head.biases[1])]
    tail_vars, tail_all = [], []
    for cfg, ws in zip(configs, weights):
        k = _trainable_count(cfg)
        vs = [tf.Variable(np.asarray(w, np.float32)) for w in ws[:k]]
        tail_vars += vs
        tail_all.append(vs + [tf.constant(np.asarray(w, np.float32)) for w in ws[k:]])
    params = tail_vars + hw + hb
    lrs = [tail_lr] * len(tail_vars) + [head_lr] * (len(hw) + len(hb))
    moments = [(tf.Variable(tf.zeros_like(v)), tf.Variable(tf.zeros_like(v))) for v in params]
    t = tf.Variable(0.0)
    mean_t, scale_t = tf.constant(mean.astype(np.float32)), tf.constant(scale.astype(np.float32))
    loss_of = _loss_fn("supcon", len(np.unique(y)))

    @tf.function(reduce_retracing=True, autograph=False)
    def step(fb, mb, yb):
        with tf.GradientTape() as tape:
            outs = apply_chain(mb, configs, tail_all, list(tail_taps))
            x = tf.concat([fb] + [_pool(o, pooling) for o in outs], axis=1)
            h = tf.nn.relu(tf.matmul((x - mean_t) / scale_t, hw[0]) + hb[0])
            h = tf.matmul(h, hw[1]) + hb[1]
            value = loss_of(tf.math.l2_normalize(h, axis=1), yb, None)
        adamw_update(params, tape.gradient(value, params), moments, t, lrs, weight_decay)
        return value

    rng = np.random.default_rng(seed)
    y32 = y_idx.astype(np.int32)
    for epoch in range(epochs):
        order = rng.permutation(len(y))
        losses = []
        for s in range(0, len(order), batch_size):
            rows = np.sort(order[s : s + batch_size])
            fb = tf.constant(np.asarray(frozen[rows], np.float32))
            mb = tf.constant(np.asarray(maps[rows], np.float32).reshape(-1, *shape))
            losses.append(float(step(fb, mb, tf.constant(y32[rows]))))
        history.append(float(np.mean(losses)))
        if on_epoch:
            on_epoch(head_epochs + epoch + 1, total, history[-1])
    new_weights = [[v.numpy() for v in vs[: _trainable_count(c)]] + [np.asarray(w, np.float32) for w in ws[_trainable_count(c):]]
                   for c, vs, ws in zip(configs, tail_all, weights)]
    # Fold the standardisation back into layer 1 (as fit_learned does).
    w0, b0 = hw[0].numpy(), hb[0].numpy()
    proj = Projection([(w0 / scale[:, None]).astype(np.float32), hw[1].numpy()],
                      [(b0 - (mean / scale).astype(np.float32) @ w0).astype(np.float32), hb[1].numpy()])
    return FineTuned(configs, new_weights, list(tail_taps), pooling, shape, proj, tap), history

