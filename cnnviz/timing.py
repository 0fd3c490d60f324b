"""Compiled forward passes and device facts for the Keras backend in use.

The dashboard runs on TensorFlow. The benchmark also runs on Keras' JAX
backend (``KERAS_BACKEND=jax``) because the models are plain Keras 3: that is
how we time GPUs where TensorFlow cannot be installed (our lent GPU machine
is offline and has JAX for CUDA 13, while TensorFlow wheels want CUDA 12).
Numbers from different backends are not the same measurement, so every
result records the backend it ran on.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable

import numpy as np

from .errors import CnnvizError

SUPPORTED_BACKENDS = ("tensorflow", "jax")


def keras_backend() -> str:
    """The Keras backend in use ('tensorflow', 'jax', ...), refused with a clear message if timing cannot use it."""
    import keras

    backend = keras.backend.backend()
    if backend not in SUPPORTED_BACKENDS:
        raise CnnvizError(f"benchmark timing supports the Keras backends {', '.join(SUPPORTED_BACKENDS)}, not {backend!r}; "
                          "set KERAS_BACKEND")
    return backend


def device_description() -> str:
    """'GPU: <name> (<n> visible)' when the backend sees a GPU, else the CPU and its core count."""
    if keras_backend() == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        if gpus:
            return f"GPU: {gpus[0].device_kind} ({len(gpus)} visible)"
    else:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return f"GPU: {details.get('device_name', gpus[0].name)} ({len(gpus)} visible)"
    cpu = platform.processor() or platform.machine()
    return f"CPU: {cpu}, {os.cpu_count()} cores"


def _first(out):
    return out[0] if isinstance(out, (list, tuple)) else out


class CompiledForward:
    """One compiled inference pass of ``model`` on a fixed batch held on the device.

    TensorFlow: a ``tf.function`` graph (no XLA), as the dashboard runs models.
    JAX: ``jax.jit`` of the model's stateless call (XLA), as Keras runs on
    that backend. Each call copies the output to the host, so it returns only
    when the device is done and both backends pay the same small copy.
    """

    def __init__(self, model, batch: np.ndarray):
        self.backend = keras_backend()
        if self.backend == "jax":
            import jax

            self._x = jax.device_put(batch)
            self._params = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])
            self._jitted = jax.jit(lambda tv, ntv, t: _first(model.stateless_call(tv, ntv, t, training=False)[0]))
            self._call: Callable[[], object] = lambda: self._jitted(*self._params, self._x)
        else:
            import tensorflow as tf

            self._x = tf.constant(batch)
            forward = tf.function(lambda t: _first(model(t, training=False)), reduce_retracing=True)
            self._call = lambda: forward(self._x)

    def __call__(self) -> None:
        np.asarray(self._call())

    def compiled_memory_mb(self) -> float | None:
        """JAX: the device memory XLA plans for this call (arguments + output + temporaries); None elsewhere."""
        if self.backend != "jax":
            return None
        stats = self._jitted.lower(*self._params, self._x).compile().memory_analysis()
        if stats is None:
            return None
        return (stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes) / 1e6


def reset_peak_memory() -> None:
    """TensorFlow on GPU: start a new peak-memory window (no-op elsewhere)."""
    if keras_backend() == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            tf.config.experimental.reset_memory_stats("GPU:0")


def peak_memory_mb(forwards: list[CompiledForward]) -> float | None:
    """Peak device memory of the timed calls on a GPU: TF's allocator peak since the last reset,
    or the largest XLA memory plan among ``forwards`` on JAX. None on CPU."""
    if not device_description().startswith("GPU"):
        return None
    if keras_backend() == "tensorflow":
        import tensorflow as tf

        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 1e6
    plans = [m for f in forwards if (m := f.compiled_memory_mb()) is not None]
    return max(plans) if plans else None
