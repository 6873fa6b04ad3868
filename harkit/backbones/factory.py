"""`create_backbone`: name + weights -> frozen feature extractor."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import torch
from pydantic import Field

import harkit.backbones.named  # timm/<model> and torchvision/<model> names
import harkit.backbones.zoo  # noqa: F401  (registers the built-in backbones)
from harkit._lazy import validated
from harkit.arguments import BackboneName
from harkit.backbones.module import Backbone
from harkit.backbones.spec import get_backbone_spec
from harkit.backbones.weights import load_state_dict_file, weights_tag

__all__ = ["create_backbone"]


@validated
def create_backbone(
    name: BackboneName,
    weights: str | os.PathLike[str] | None = "none",
    layers: Sequence[str] | None = None,
    *,
    frozen: bool = True,
    grid: Annotated[int, Field(ge=1)] = 1,
) -> Backbone:
    """Build the backbone ``name`` as a feature extractor.

    ``weights``: ``'none'`` (random), ``'default'`` (the spec's ``default_weights``), a tag of
    ``spec.weights`` (``'imagenet'``, ``'kinetics'``), or a path to a ``.pt``/``.pth``/
    ``.safetensors`` state_dict (classifier keys are ignored). The module's ``preprocessing``
    is the chosen weights entry's (``spec.preprocessing_for(weights)``). With ``layers`` the module
    returns a dict of pooled features (see `Backbone`), the layers' maps averaged over
    ``grid x grid`` cells when ``grid > 1``. ``frozen=False`` leaves it trainable.
    """
    spec = get_backbone_spec(name)
    weights = "none" if weights is None else weights
    if str(weights) == "default":
        weights = spec.default_weights
    entry = spec.weights_entry(weights)  # unknown tags and missing files raise here
    tag: str | None = None
    state_dict = None
    if str(weights) in spec.weights:
        tag = str(weights)
    elif str(weights) != "none":
        state_dict = load_state_dict_file(Path(weights))
    if tag is None and state_dict is None:
        # Random weights from a fixed seed: 'none' means the same network in every process
        # (extraction ranks, training, inference), so cached features stay valid.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = spec.builder(spec, tag, state_dict)
    else:
        net = spec.builder(spec, tag, state_dict)
    preprocessing = entry.preprocessing if entry is not None else spec.preprocessing
    assert preprocessing is not None
    module = Backbone(
        net, spec, weights=weights_tag(weights), frozen=frozen, preprocessing=preprocessing
    )
    return module.with_layers(layers, grid) if layers or grid != 1 else module
