"""Gradient and CAM methods, all through tf-keras-vis (it runs on Keras 3.15 here).

Each wraps one tf-keras-vis visualiser built on the model's *logits* (a new
graph over the shared layers, so nothing is cloned or mutated) and is built
once per model, so its traced functions are reused across calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import UnknownNameError
from ..models.build import logits_model
from ..progress import Progress
from .base import Attributor, MethodConfig


def default_cam_layer(loaded) -> str:
    """The last spatial (4-D) layer among the model's named layers: its last conv block."""
    for name in reversed(loaded.spec.layers):
        if len(loaded.model.get_layer(name).output.shape) == 4:
            return name
    raise ValueError(f"{loaded.spec.name} has no spatial layer for CAM")


class _TfKerasVis(Attributor):
    visualiser: str = ""

    def __init__(self, loaded, config=None):
        super().__init__(loaded, config)
        from tf_keras_vis import gradcam, gradcam_plus_plus, saliency, scorecam

        cls = {"saliency": saliency.Saliency, "gradcam": gradcam.Gradcam,
               "gradcam++": gradcam_plus_plus.GradcamPlusPlus, "scorecam": scorecam.Scorecam}[self.visualiser]
        self._vis = cls(logits_model(loaded), clone=False)

    def _kwargs(self) -> dict:
        return {}

    def __call__(self, images: np.ndarray, targets: Sequence[int], progress: Progress | None = None) -> np.ndarray:
        import tensorflow as tf
        from tf_keras_vis.utils.scores import CategoricalScore

        maps = self._vis(CategoricalScore(list(targets)), tf.constant(np.asarray(images, np.float32)), **self._kwargs())
        if progress:
            progress(len(images), len(images))
        return np.clip(np.asarray(maps, np.float32), 0.0, 1.0)  # NaN stays NaN: explain reports it, no blank map


@dataclass(frozen=True)
class SaliencyConfig(MethodConfig):
    method: str = "saliency"


class VanillaSaliency(_TfKerasVis):
    """|∂ logit / ∂ pixel|, max over colour channels (Simonyan et al. 2014)."""

    config_class = SaliencyConfig
    visualiser = "saliency"


@dataclass(frozen=True)
class SmoothGradConfig(MethodConfig):
    method: str = "smoothgrad"
    samples: int = 20
    noise: float = 0.2  # noise std as a fraction of the input range


class SmoothGrad(_TfKerasVis):
    """Saliency averaged over noisy copies of the image (Smilkov et al. 2017)."""

    config_class = SmoothGradConfig
    visualiser = "saliency"

    def _kwargs(self) -> dict:
        return {"smooth_samples": self.config.samples, "smooth_noise": self.config.noise}


@dataclass(frozen=True)
class CamConfig(MethodConfig):
    method: str = "gradcam"
    layer: str | None = None  # None: the last conv layer


class _Cam(_TfKerasVis):
    config_class = CamConfig

    def __init__(self, loaded, config=None):
        super().__init__(loaded, config)
        layer = self.config.layer
        if layer is not None and (layer not in {lyr.name for lyr in loaded.model.layers}
                                  or len(loaded.model.get_layer(layer).output.shape) != 4):
            raise UnknownNameError(f"{loaded.spec.name} has no spatial layer {layer!r} for CAM; "
                                   f"try one of {', '.join(loaded.spec.layers)}")

    def _kwargs(self) -> dict:
        return {"penultimate_layer": self.config.layer or default_cam_layer(self.loaded), "seek_penultimate_conv_layer": False}


class GradCam(_Cam):
    """Channel weights = mean gradient of the logit (Selvaraju et al. 2017)."""

    visualiser = "gradcam"


class GradCamPlusPlus(_Cam):
    """Grad-CAM with higher-order pixel weights (Chattopadhyay et al. 2018)."""

    visualiser = "gradcam++"


@dataclass(frozen=True)
class ScoreCamConfig(CamConfig):
    method: str = "scorecam"
    max_channels: int = 64  # Faster Score-CAM: the 64 channels with the most varied maps; 0 = all


class ScoreCam(_Cam):
    """Channel weights = target score of the image masked by each channel's map (Wang et al. 2020)."""

    config_class = ScoreCamConfig
    visualiser = "scorecam"

    def __init__(self, loaded, config=None):
        super().__init__(loaded, config)
        import keras

        # tf-keras-vis calls model.predict, whose progress bar would land in the CLI's stdout.
        keras.utils.disable_interactive_logging()

    def _kwargs(self) -> dict:
        return {**super()._kwargs(), "max_N": self.config.max_channels or None, "batch_size": 64}
