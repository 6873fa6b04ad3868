"""`create_backbone`: name + weights -> frozen feature extractor."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

import harkit.backbones.named  # timm/<model> and torchvision/<model> names
import harkit.backbones.zoo  # noqa: F401  (registers the built-in backbones)
from harkit.backbones.errors import WeightsLoadError
from harkit.backbones.module import Backbone
from harkit.backbones.spec import get_backbone_spec
from harkit.backbones.weights import PRETRAINED_TAGS, load_state_dict_file, weights_tag

__all__ = ["create_backbone"]


def create_backbone(
    name: str,
    weights: str | os.PathLike[str] | None = "none",
    layers: Sequence[str] | None = None,
    *,
    frozen: bool = True,
    grid: int = 1,
) -> Backbone:
    """Build the backbone ``name`` as a feature extractor.

    ``weights``: ``'none'`` (random), ``'default'`` (the spec's ``default_weights``), a tag of
    ``spec.weights`` (``'imagenet'``, ``'kinetics'``), or a path to a ``.pt``/``.pth``/
    ``.safetensors`` state_dict (classifier keys are ignored). With ``layers`` the module
    returns a dict of pooled features (see `Backbone`), the layers' maps averaged over
    ``grid x grid`` cells when ``grid > 1``. ``frozen=False`` leaves it trainable.
    """
    spec = get_backbone_spec(name)
    weights = "none" if weights is None else weights
    if str(weights) == "default":
        weights = spec.default_weights
    tag: str | None = None
    state_dict = None
    if str(weights) in spec.weights:
        tag = str(weights)
    elif str(weights) in PRETRAINED_TAGS:
        raise WeightsLoadError(
            f"backbone {name!r} has no {weights!r} weights; available: "
            f"{', '.join(['none', *spec.weights])} or a state_dict file"
        )
    elif str(weights) != "none":
        path = Path(weights)
        if not path.is_file():
            raise WeightsLoadError(
                f"weights for {name!r} must be 'none', one of {list(spec.weights)} or an "
                f"existing state_dict file; {str(weights)!r} is none of these"
            )
        state_dict = load_state_dict_file(path)
    if tag is None and state_dict is None:
        # Random weights from a fixed seed: 'none' means the same network in every process
        # (extraction ranks, training, inference), so cached features stay valid.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = spec.builder(spec, tag, state_dict)
    else:
        net = spec.builder(spec, tag, state_dict)
    module = Backbone(net, spec, weights=weights_tag(weights), frozen=frozen)
    return module.with_layers(layers, grid) if layers or grid != 1 else module
