"""Attribution: where in an image a model finds the evidence for a class.

``METHODS`` maps each method name to its :class:`~.base.Attributor` class and
config; :func:`explain` runs one method on one prepared image, scores it with
deletion/insertion AUC and caches the result on disk. lime, shap and
tf-keras-vis are imported only when their method runs.
"""

from .base import Attributor, MethodConfig
from .explain import (
    METHODS,
    Attribution,
    explain,
    get_attributor,
    make_config,
    predictions,
    resolve_methods,
)
from .faithfulness import RISE_STEPS, FaithfulnessConfig, faithfulness
from .gradients import default_cam_layer

__all__ = ["METHODS", "RISE_STEPS", "Attribution", "Attributor", "FaithfulnessConfig", "MethodConfig",
           "default_cam_layer", "explain", "faithfulness", "get_attributor", "make_config", "predictions",
           "resolve_methods"]
