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


def gpu_name() -> str | None:
    """'<name> (<n> visible)' of the first GPU the backend sees, or None."""
    if keras_backend() == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        return f"{gpus[0].device_kind} ({len(gpus)} visible)" if gpus else None
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"{details.get('device_name', gpus[0].name)} ({len(gpus)} visible)"


def device_description() -> str:
    """'GPU: <name> (<n> visible)' when the backend sees a GPU, else the CPU and its core count."""
    if (gpu := gpu_name()) is not None:
        return f"GPU: {gpu}"
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

            x = jax.device_put(batch)
            params = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])

            def forward(trainable, non_trainable, inputs):
                return _first(model.stateless_call(trainable, non_trainable, inputs, training=False)[0])

            # Compiled ahead of time, once: the same executable is timed and asked for its memory plan.
            self._compiled = jax.jit(forward).lower(*params, x).compile()
            self._call: Callable[[], object] = lambda: self._compiled(*params, x)
        else:
            import tensorflow as tf

            x = tf.constant(batch)
            forward = tf.function(lambda t: _first(model(t, training=False)), reduce_retracing=True)
            self._call = lambda: forward(x)

    def __call__(self) -> None:
        np.asarray(self._call())

    def compiled_memory_mb(self) -> float | None:
        """JAX: the device memory XLA plans for this call (arguments + output + temporaries); None elsewhere."""
        if self.backend != "jax":
            return None
        stats = self._compiled.memory_analysis()
        if stats is None:
            return None
        return (stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes) / 1e6


def reset_peak_memory() -> None:
    """TensorFlow on GPU: start a new peak-memory window (no-op elsewhere)."""
    if keras_backend() == "tensorflow" and gpu_name() is not None:
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats("GPU:0")


def peak_memory_mb(forwards: list[CompiledForward]) -> float | None:
    """Peak device memory of the timed calls on a GPU: TF's allocator peak since the last reset,
    or the largest XLA memory plan among ``forwards`` on JAX. None on CPU."""
    if gpu_name() is None:
        return None
    if keras_backend() == "tensorflow":
        import tensorflow as tf

        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 1e6
    plans = [m for f in forwards if (m := f.compiled_memory_mb()) is not None]
    return max(plans) if plans else None
