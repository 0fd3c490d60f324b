"""Model registry, building and ImageNet predictions."""

from .build import LoadedModel, build_model
from .registry import DEFAULT_MODEL, MODELS, ModelSpec, get_model_spec, list_models
from .weights import weights_status

__all__ = ["DEFAULT_MODEL", "MODELS", "LoadedModel", "ModelSpec", "build_model", "get_model_spec", "list_models", "weights_status"]
