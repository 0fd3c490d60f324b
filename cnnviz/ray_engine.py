"""Feature extraction on Ray Data: the same chunks, computed by a pool of workers.

Each Ray row is one chunk of image paths; an actor per worker builds the model
once and returns the chunk's pooled features, which the driver saves in the
usual chunk cache (so a Ray run resumes like a local one, and the final
matrices are identical in format). With no address a local Ray instance is
started on this machine's cores; ``address="ray://head:10001"`` (or ``"auto"``
on a cluster node) uses an existing cluster. Workers read the images by path,
so on a cluster the dataset must sit on storage every node mounts at the same
path; the cnnviz package itself is shipped to the workers by Ray.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

_FORWARDED_ENV = ("CNNVIZ_CACHE_DIR", "CNNVIZ_OFFLINE", "CNNVIZ_WEIGHTS_DIR", "KERAS_HOME", "TF_CPP_MIN_LOG_LEVEL")


class _ChunkWorker:
    """A Ray Data actor: builds the model once, then turns chunks of paths into features."""

    def __init__(self, model_name: str, layers: Sequence[str], pooling: str, batch_size: int):
        from .workflows import get_model

        self.loaded = get_model(model_name)
        self.layers, self.pooling, self.batch_size = list(layers), pooling, batch_size

    def __call__(self, row: dict) -> dict:
        from .features import compute_range

        arrays = compute_range(self.loaded, list(row["paths"]), list(row["ids"]), self.layers, self.pooling, self.batch_size)
        return {"start": row["start"], **{f"layer_{i}": arrays[name] for i, name in enumerate(self.layers)}}


def _init_ray(address: str | None, workers: int | None) -> None:
    try:
        import ray
        import ray.data  # Ray Data is an extra: fail here, with the install hint
    except ImportError as exc:  # pragma: no cover - ray is in requirements.txt
        raise ImportError("--engine ray needs Ray: pip install 'ray[data]'") from exc
    if not ray.is_initialized():
        env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
        package = str(Path(__file__).resolve().parent)
        kwargs = {"num_cpus": workers or os.cpu_count()} if address is None else {}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 runtime_env={"env_vars": env, "py_modules": [package], "excludes": ["data/samples"]}, **kwargs)


def compute_chunks(model_name: str, chunks: dict[int, tuple[list[str], list[str]]], layers: Sequence[str], pooling: str,
                   batch_size: int, save_chunk: Callable[[int, dict[str, np.ndarray]], None],
                   address: str | None = None, workers: int | None = None) -> None:
    """Compute ``{start: (paths, ids)}`` chunks on Ray; ``save_chunk(start, {layer: array})`` as each arrives."""
    _init_ray(address, workers)
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False
    n_workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    items = [{"start": s, "paths": paths, "ids": ids} for s, (paths, ids) in sorted(chunks.items())]
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map(
        _ChunkWorker, fn_constructor_args=(model_name, list(layers), pooling, batch_size),
        concurrency=min(n_workers, len(items)), num_cpus=1)
    for row in ds.iter_rows():
        save_chunk(int(row["start"]), {name: np.asarray(row[f"layer_{i}"], np.float32) for i, name in enumerate(layers)})
