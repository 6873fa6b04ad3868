"""End-to-end networks trained from pixels (seed 003) and per-module parameter tables.

``C3DGRU`` reproduces seed 003's 3D CNN + GRU layer for layer; ``Small2DCNNGRU`` is its 2D
baseline (a small CNN per frame, then a GRU). Both reuse the recurrent head of
:mod:`harkit.heads`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from harkit.errors import HarkitError
from harkit.heads import RecurrentHead

__all__ = [
    "C3DGRU",
    "NetworkConfigError",
    "ParameterRow",
    "Small2DCNNGRU",
    "count_parameters",
    "parameter_table",
]

ParameterRow = tuple[str, str, int]


class NetworkConfigError(HarkitError, ValueError):
    """A network was configured, or fed, with sizes it cannot handle."""


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Total number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def parameter_table(model: nn.Module, include_empty: bool = True) -> list[ParameterRow]:
    """Per-module parameter counts, like a Keras summary: ``[(name, type, count), ...]``.

    One row per leaf module (``conv1``, ``head.encoder.stack.layers.0``, ...) in definition
    order, plus every non-leaf module that owns parameters directly (e.g. a fusion weight), with
    only the parameters it owns itself, so the counts sum to the model's total. Parameterless
    leaves (pooling, dropout, ReLU) are listed with 0 unless ``include_empty`` is False.
    """
    rows: list[ParameterRow] = []
    for name, module in model.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        is_leaf = next(module.children(), None) is None
        if own or (is_leaf and include_empty and module is not model):
            rows.append((name or "(model)", type(module).__name__, own))
    return rows


def _size2(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = (int(v) for v in size)
    return h, w


def _units(rnn: str | Sequence[str], units: int | Sequence[int]) -> tuple[list[str], list[int]]:
    cells = [rnn] if isinstance(rnn, str) else list(rnn)
    sizes = [units] * len(cells) if isinstance(units, int) else [int(u) for u in units]
    if len(sizes) != len(cells):
        raise NetworkConfigError(f"{len(cells)} recurrent layers {cells} but units {sizes}")
    return cells, sizes


class C3DGRU(nn.Module):
    """Seed 003: small 3D CNN trained from scratch, then a GRU over its remaining time axis.

    ``conv1(16) -> pool1 -> dropout -> conv2(32) -> pool2 -> conv3(64) -> pool3 -> reshape to
    (time, features) -> RNN -> classifier``. All convolutions are 3x3x3 with 'same' padding and
    ReLU; all poolings 2x2x2 with floor division (Keras 'valid').

    Feature-dim arithmetic: each pool halves T, H and W (rounding down), so the RNN sees
    ``T' = T // 2 // 2 // 2`` steps of ``channels[-1] * H' * W'`` features. For 20x100x100x3:
    ``20 -> 10 -> 5 -> 2`` and ``100 -> 50 -> 25 -> 12``, giving (2, 64*12*12) = (2, 9216); the
    conv layers have 3*27*16+16 = 1,312, 16*27*32+32 = 13,856 and 32*27*64+64 = 55,360 params,
    GRU(128) has 3*(9216*128 + 128*128 + 2*128) = 3,588,864 (PyTorch's two biases per gate
    equal Keras ``reset_after=True``) and the 4-class dense 128*4+4 = 516. Features are
    flattened channels-last (H', W', C) per step, as the Keras reshape does.

    Variants: ``rnn=None`` is "3D CNN alone" (flatten everything -> dense);
    ``rnn='lstm'``/``'gru'`` with ``units`` 32 or 128; ``rnn=['lstm', 'gru']`` with
    ``units=[32, 32]`` stacks them.

    Input ``(B, C, T, H, W)`` float; ``H, W`` must equal ``size`` (the RNN's input width depends
    on them), ``T`` may vary as long as ``T >= 8``; with ``rnn=None`` T must equal ``frames``.
    """

    def __init__(
        self,
        num_classes: int,
        frames: int = 20,
        size: int | Sequence[int] = 100,
        in_channels: int = 3,
        channels: Sequence[int] = (16, 32, 64),
        dropout: float = 0.5,
        rnn: str | Sequence[str] | None = "gru",
        units: int | Sequence[int] = 128,
    ) -> None:
        super().__init__()
        if len(channels) != 3:
            raise NetworkConfigError(f"C3DGRU has exactly 3 conv layers, got channels {channels}")
        self.frames = frames
        self.size = _size2(size)
        self.in_channels = in_channels
        t, h, w = frames, *self.size
        for _ in range(3):
            t, h, w = t // 2, h // 2, w // 2
        if min(t, h, w) < 1:
            raise NetworkConfigError(
                f"input {frames}x{self.size[0]}x{self.size[1]} is too small for three 2x2x2 "
                "poolings (each dimension needs at least 8)"
            )
        self.sequence_shape = (t, channels[-1] * h * w)

        c1, c2, c3 = channels
        self.conv1 = nn.Conv3d(in_channels, c1, 3, padding=1)
        self.pool1 = nn.MaxPool3d(2)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv3d(c1, c2, 3, padding=1)
        self.pool2 = nn.MaxPool3d(2)
        self.conv3 = nn.Conv3d(c2, c3, 3, padding=1)
        self.pool3 = nn.MaxPool3d(2)
        self.relu = nn.ReLU()
        self.head: nn.Module
        if rnn is None:
            self.rnn_cells: list[str] = []
            self.head = nn.Linear(t * self.sequence_shape[1], num_classes)
        else:
            self.rnn_cells, sizes = _units(rnn, units)
            self.head = RecurrentHead(
                self.sequence_shape[1], num_classes, hidden=sizes, cell=self.rnn_cells
            )

    def sequence(self, x: Tensor) -> Tensor:
        """The 3D CNN trunk: ``(B, C, T, H, W)`` -> ``(B, T', features)``."""
        if x.dim() != 5 or x.shape[1] != self.in_channels or tuple(x.shape[3:]) != self.size:
            raise NetworkConfigError(
                f"expected input (B, {self.in_channels}, T, {self.size[0]}, {self.size[1]}), "
                f"got {tuple(x.shape)}"
            )
        if x.shape[2] < 8:
            raise NetworkConfigError(f"need at least 8 frames, got {x.shape[2]}")
        x = self.dropout(self.pool1(self.relu(self.conv1(x))))
        x = self.pool2(self.relu(self.conv2(x)))
        x = self.pool3(self.relu(self.conv3(x)))
        b, _, t = x.shape[:3]
        return x.permute(0, 2, 3, 4, 1).reshape(b, t, -1)

    def forward(self, x: Tensor) -> Tensor:
        seq = self.sequence(x)
        if isinstance(self.head, RecurrentHead):
            return self.head(seq)
        if seq.shape[1] != self.sequence_shape[0]:
            raise NetworkConfigError(
                f"the CNN-alone variant needs exactly {self.frames} frames, got {x.shape[2]}"
            )
        return self.head(seq.flatten(1))


class Small2DCNNGRU(nn.Module):
    """Seed 003's 2D baseline: a small CNN applied to every frame (time-distributed), its maps
    flattened, then a recurrent head (GRU 32 by default), all trained from scratch.

    Per block: Conv2d 3x3 'same' -> ReLU -> MaxPool 2x2. The maps are flattened, as the 3D
    network's are, rather than globally pooled: pooling away where things are left the GRU
    nothing to tell "move left" from "move right" (chance on ``harkit data synth``). Input
    ``(B, T, C, size, size)`` float with optional ``lengths`` for padded clips.
    """

    def __init__(
        self,
        num_classes: int,
        size: int,
        in_channels: int = 3,
        channels: Sequence[int] = (16, 32, 64),
        rnn: str | Sequence[str] = "gru",
        units: int | Sequence[int] = 32,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not channels:
            raise NetworkConfigError("Small2DCNNGRU needs at least one conv block")
        if size < 2 ** len(channels):
            raise NetworkConfigError(
                f"frames must be at least {2 ** len(channels)} pixels a side, got size {size}"
            )
        self.in_channels, self.size = in_channels, size
        blocks: list[nn.Module] = []
        prev = in_channels
        for c in channels:
            blocks += [nn.Conv2d(prev, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            prev = c
        blocks += [nn.Flatten(), nn.Dropout(dropout)]
        self.frame_encoder = nn.Sequential(*blocks)
        feature_dim = prev * (size // 2 ** len(channels)) ** 2
        cells, sizes = _units(rnn, units)
        self.head = RecurrentHead(
            feature_dim, num_classes, hidden=sizes, cell=cells, dropout=dropout
        )

    def sequence(self, x: Tensor) -> Tensor:
        """Per-frame CNN features: ``(B, T, C, H, W)`` -> ``(B, T, flattened maps)``."""
        if x.dim() != 5 or x.shape[2] != self.in_channels:
            raise NetworkConfigError(
                f"expected input (B, T, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        if tuple(x.shape[3:]) != (self.size, self.size):
            raise NetworkConfigError(
                f"expected {self.size}x{self.size} frames, got {x.shape[3]}x{x.shape[4]}"
            )
        b, t = x.shape[:2]
        return self.frame_encoder(x.flatten(0, 1)).view(b, t, -1)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.head(self.sequence(x), lengths)
