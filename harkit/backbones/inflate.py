"""Inflate a 2D CNN into a 3D one (I3D, Carreira & Zisserman 2017).

A 2D ``k x k`` kernel becomes ``t x k x k``: the 2D weights repeated ``t`` times along time and
divided by ``t``. BatchNorm statistics are copied. The time axis is padded "same" (TensorFlow
rule, output length ``ceil(T / stride)``) by *replicating* the edge frames instead of adding
zeros, so a clip made of one repeated frame gives exactly the 2D activations at every time
step, for any clip length, including the first and last steps.

Kinetics-trained I3D checkpoints (DeepMind's, and their PyTorch port) were trained with
TensorFlow "same" *zero* padding in time, height and width instead: `SamePadConv3d`,
`SamePadMaxPool3d` and `WindowMeanPool3d` reproduce that network (see
`harkit.backbones.i3d_kinetics`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from harkit.backbones.errors import BackboneError

__all__ = [
    "TIME_PADDED_MODULES",
    "InflatedAvgPool3d",
    "InflatedConv3d",
    "InflatedMaxPool3d",
    "SamePadConv3d",
    "SamePadMaxPool3d",
    "WindowMeanPool3d",
    "adapt_input_channels",
    "inflate_batchnorm",
    "inflate_conv2d",
    "inflate_model",
    "inflate_pool",
]

TimeKernel = tuple[int, int]  # (temporal kernel, temporal stride)


def _same_pad(length: int, kernel: int, stride: int) -> tuple[int, int]:
    # ceil without a negative floor division: an exported graph computes this from the input's
    # shape with ONNX Div, which truncates towards zero (-(-7 // 2) would give 3, not 4)
    out = (length + stride - 1) // stride
    total = max((out - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


def _pad_time(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    front, back = _same_pad(x.shape[2], kernel, stride)
    if front or back:
        x = F.pad(x, (0, 0, 0, 0, front, back), mode="replicate")
    return x


class InflatedConv3d(nn.Conv3d):
    """Conv3d with no zero padding in time: edge frames are replicated ("same" length)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_pad_time(x, self.kernel_size[0], self.stride[0]))


class InflatedMaxPool3d(nn.MaxPool3d):
    """MaxPool3d with replicated-frame "same" padding in time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_pad_time(x, _triple(self.kernel_size)[0], _triple(self.stride)[0]))


class InflatedAvgPool3d(nn.AvgPool3d):
    """AvgPool3d with replicated-frame "same" padding in time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_pad_time(x, _triple(self.kernel_size)[0], _triple(self.stride)[0]))


def _tf_same_pads(
    size: Sequence[int], kernel: Sequence[int], stride: Sequence[int]
) -> tuple[int, ...]:
    """``F.pad`` argument (last dimension first) for TF "same" padding of every dimension."""
    pads: list[int] = []
    for length, k, s in reversed(list(zip(size, kernel, stride, strict=True))):
        pads.extend(_same_pad(length, k, s))
    return tuple(pads)


class SamePadConv3d(nn.Conv3d):
    """Conv3d with TensorFlow "same" zero padding in time, height and width, computed from each
    input's size: output ``ceil(size / stride)``, an odd total pad puts the extra frame / row /
    column at the end. This is how Kinetics I3D was trained; a fixed symmetric ``padding``
    differs from it at stride 2 (e.g. the 7x7x7/2 stem pads 2 before and 3 after 224)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _tf_same_pads(x.shape[2:], self.kernel_size, self.stride)
        return super().forward(F.pad(x, pads))


class SamePadMaxPool3d(nn.MaxPool3d):
    """MaxPool3d with TensorFlow "same" padding in every dimension (zeros, as the PyTorch I3D
    port pads: I3D only max-pools ReLU outputs, where a zero never beats a real value)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _tf_same_pads(x.shape[2:], _triple(self.kernel_size), _triple(self.stride))
        return super().forward(F.pad(x, pads))


class WindowMeanPool3d(nn.Module):
    """Average over ``kernel`` windows at stride 1 (I3D's ``AvgPool3d((2, 7, 7))``), then the
    mean over all window positions, keeping the dims: ``(B, C, 1, 1, 1)``.

    At 16x224x224 there is exactly one window, so this is a global average. On larger inputs
    it is the mean of the per-window features, so a linear classifier on it gives the mean of
    the per-window logits. A map smaller than the kernel (short or small clips, on which the
    original would fail) uses the kernel clipped to the map: a global average.
    """

    def __init__(self, kernel_size: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel_size = tuple(int(k) for k in kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = tuple(min(k, n) for k, n in zip(self.kernel_size, x.shape[2:], strict=True))
        return F.avg_pool3d(x, kernel, stride=1).mean(dim=(2, 3, 4), keepdim=True)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


# These compute padding or kernels from the input size, so torch.fx must not trace into them.
TIME_PADDED_MODULES: tuple[type[nn.Module], ...] = (
    InflatedConv3d,
    InflatedMaxPool3d,
    InflatedAvgPool3d,
    SamePadConv3d,
    SamePadMaxPool3d,
    WindowMeanPool3d,
)


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _triple(v: int | tuple[int, ...]) -> tuple[int, int, int]:
    return (v, v, v) if isinstance(v, int) else (int(v[0]), int(v[1]), int(v[2]))


def inflate_conv2d(
    conv: nn.Conv2d, time_kernel: int | None = None, time_stride: int | None = None
) -> InflatedConv3d:
    """3D copy of ``conv``: weights repeated ``t`` times in time and divided by ``t``.

    Defaults follow I3D: the temporal kernel and stride equal the spatial ones (7x7/2 stem ->
    7x7x7/2, 3x3 -> 3x3x3, 1x1 -> 1x1x1).
    """
    if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
        raise BackboneError(
            f"cannot inflate {conv}: only explicit integer zero padding is supported"
        )
    kh, kw = _pair(conv.kernel_size)
    sh, sw = _pair(conv.stride)
    kt = kh if time_kernel is None else time_kernel
    st = sh if time_stride is None else time_stride
    conv3d = InflatedConv3d(
        conv.in_channels,
        conv.out_channels,
        kernel_size=(kt, kh, kw),
        stride=(st, sh, sw),
        padding=(0, *_pair(conv.padding)),
        dilation=(1, *_pair(conv.dilation)),
        groups=conv.groups,
        bias=conv.bias is not None,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        conv3d.weight.copy_(conv.weight.unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt)
        if conv.bias is not None:
            conv3d.bias.copy_(conv.bias)
    conv3d.train(conv.training)
    return conv3d


def inflate_batchnorm(bn: nn.BatchNorm2d) -> nn.BatchNorm3d:
    """BatchNorm3d with the same affine parameters, running statistics and settings."""
    bn3d = nn.BatchNorm3d(
        bn.num_features,
        eps=bn.eps,
        momentum=bn.momentum,
        affine=bn.affine,
        track_running_stats=bn.track_running_stats,
        device=bn.weight.device if bn.affine else None,
    )
    bn3d.load_state_dict(bn.state_dict())
    bn3d.train(bn.training)
    return bn3d


def inflate_pool(
    pool: nn.Module, time_kernel: int | None = None, time_stride: int | None = None
) -> nn.Module:
    """3D version of a 2D max/avg/adaptive pooling layer.

    Adaptive pools average (or max) over the whole time axis: output ``(1, h, w)``.
    """
    if isinstance(pool, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
        hw = pool.output_size
        hw = (hw, hw) if isinstance(hw, int) or hw is None else tuple(hw)
        cls = (
            nn.AdaptiveAvgPool3d if isinstance(pool, nn.AdaptiveAvgPool2d) else nn.AdaptiveMaxPool3d
        )
        return cls((1, *hw))
    if not isinstance(pool, nn.MaxPool2d | nn.AvgPool2d):
        raise BackboneError(f"cannot inflate pooling layer {pool}")
    kh, kw = _pair(pool.kernel_size)
    sh, sw = _pair(pool.stride)
    kt = kh if time_kernel is None else time_kernel
    st = sh if time_stride is None else time_stride
    padding = (0, *_pair(pool.padding))
    if isinstance(pool, nn.MaxPool2d):
        return InflatedMaxPool3d(
            (kt, kh, kw),
            stride=(st, sh, sw),
            padding=padding,
            dilation=(1, *_pair(pool.dilation)),
            ceil_mode=pool.ceil_mode,
        )
    return InflatedAvgPool3d(
        (kt, kh, kw),
        stride=(st, sh, sw),
        padding=padding,
        ceil_mode=pool.ceil_mode,
        count_include_pad=pool.count_include_pad,
        divisor_override=pool.divisor_override,
    )


def _inflate_leaf(module: nn.Module, time: TimeKernel | None) -> nn.Module | None:
    kt, st = time if time is not None else (None, None)
    if isinstance(module, nn.Conv2d):
        return inflate_conv2d(module, kt, st)
    if isinstance(module, nn.BatchNorm2d):
        return inflate_batchnorm(module)
    if isinstance(
        module, nn.MaxPool2d | nn.AvgPool2d | nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d
    ):
        return inflate_pool(module, kt, st)
    # Containers such as torchvision's BasicConv2d are walked into; only torch.nn's own
    # 2D leaves (Dropout2d, InstanceNorm2d, ...) are unsupported.
    if type(module).__module__.startswith("torch.nn") and type(module).__name__.endswith("2d"):
        raise BackboneError(f"don't know how to inflate {type(module).__name__}")
    return None


def inflate_model(
    model: nn.Module,
    time_kernels: Mapping[str, TimeKernel] | None = None,
    inplace: bool = False,
) -> nn.Module:
    """Replace every 2D conv / batch norm / pool of ``model`` by its inflated 3D version.

    ``time_kernels`` maps qualified module names to ``(temporal kernel, temporal stride)``;
    other layers use their spatial kernel and stride in time too. The model's own ``forward``
    is kept, so it must be dimension-agnostic (concatenation on dim 1, ``flatten(x, 1)``...).
    """
    overrides = dict(time_kernels or {})
    names = {name for name, _ in model.named_modules()}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise BackboneError(f"time_kernels names modules the model does not have: {unknown}")
    model = model if inplace else copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        if not name:
            continue
        new = _inflate_leaf(module, overrides.get(name))
        if new is None:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new)
    return model


def adapt_input_channels(conv: nn.Conv2d | nn.Conv3d, in_channels: int) -> nn.Module:
    """Copy of ``conv`` for ``in_channels`` inputs: filters averaged over the input channels and
    repeated (TSN cross-modality initialisation, used for optical-flow streams)."""
    if conv.groups != 1:
        raise BackboneError("cannot change the input channels of a grouped convolution")
    new = copy.deepcopy(conv)
    new.in_channels = in_channels
    with torch.no_grad():
        mean = conv.weight.mean(dim=1, keepdim=True)
        repeats = (1, in_channels) + (1,) * (conv.weight.ndim - 2)
        new.weight = nn.Parameter(mean.repeat(repeats), requires_grad=conv.weight.requires_grad)
    return new
