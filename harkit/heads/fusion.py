"""Stream and layer fusion: feature concat (seed 000), learned weighted average of two streams
(seed 001) and the two-LSTM attention head over two CNN layers (seed 004)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from harkit.heads.pooling import HeadError, TemporalPool, check_lengths
from harkit.heads.recurrent import RecurrentEncoder, RecurrentStack, _mlp

__all__ = [
    "FUSION_MODES",
    "ConcatFusion",
    "DualLayerAttentionHead",
    "TwoStreamHead",
    "WeightedAverageFusion",
    "concat_features",
]

FUSION_MODES = ("learned", "average")


def concat_features(*features: Tensor) -> Tensor:
    """Concatenate per-step features of several backbones along the last dim.

    Seed 000: Inception-ResNet-V2 (1536) + GoogLeNet (1024) -> 2560 per frame. All inputs must
    agree on every dim but the last.
    """
    if not features:
        raise HeadError("concat_features needs at least one tensor")
    lead = features[0].shape[:-1]
    for f in features[1:]:
        if f.shape[:-1] != lead:
            raise HeadError(
                "cannot concatenate features of shapes "
                + ", ".join(str(tuple(f.shape)) for f in features)
            )
    return torch.cat(features, dim=-1)


class ConcatFusion(nn.Module):
    """Module form of :func:`concat_features` (no parameters)."""

    def forward(self, *features: Tensor) -> Tensor:
        return concat_features(*features)


class WeightedAverageFusion(nn.Module):
    """``alpha * A + (1 - alpha) * B`` of two same-shaped stream outputs (seed 001).

    ``mode='learned'``: ``alpha = sigmoid(w)`` with one scalar parameter ``w``, so alpha stays in
    [0, 1] whatever the optimiser does; ``w`` starts at ``logit(init)`` (0.5 -> 0).
    ``mode='average'``: alpha fixed at 0.5, no parameters (the paper's "average" ablation).
    """

    def __init__(self, mode: str = "learned", init: float = 0.5) -> None:
        super().__init__()
        if mode not in FUSION_MODES:
            raise HeadError(f"unknown fusion mode {mode!r}; expected one of {FUSION_MODES}")
        if not 0.0 < init < 1.0:
            raise HeadError(f"initial alpha must lie strictly between 0 and 1, got {init}")
        self.mode = mode
        if mode == "learned":
            self.weight = nn.Parameter(torch.tensor(math.log(init / (1.0 - init))))
        else:
            self.register_buffer("weight", torch.tensor(0.0))

    @property
    def alpha(self) -> Tensor:
        """The current stream-A weight, a 0-d tensor in [0, 1]."""
        return torch.sigmoid(self.weight)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        if a.shape != b.shape:
            raise HeadError(
                f"weighted average needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        alpha = self.alpha.to(a.dtype)
        return alpha * a + (1.0 - alpha) * b


def _split(x: Tensor, x_b: Tensor | None, dims: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Two inputs given separately, or one tensor whose last dim concatenates both."""
    if x_b is not None:
        return x, x_b
    if x.shape[-1] != sum(dims):
        raise HeadError(
            f"expected {dims[0]}+{dims[1]}={sum(dims)} concatenated features, got {x.shape[-1]}"
        )
    return x[..., : dims[0]], x[..., dims[0] :]


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    values = tuple(int(v) for v in value)
    if len(values) != 2:
        raise HeadError(f"expected one value or two (one per input), got {values}")
    return values  # type: ignore[return-value]


class TwoStreamHead(nn.Module):
    """Seed 001: RGB and flow feature sequences -> one recurrent encoder each -> weighted
    average of their outputs -> dense -> logits.

    Each stream is a :class:`RecurrentEncoder` (default 2 GRU layers x 256, last step); the
    fused 256-d vector goes straight into the dense classifier. ``forward(x, lengths, x_b,
    lengths_b)`` takes the streams separately, or ``x`` alone as their concatenation along D.
    The single-stream ablations are plain :class:`~harkit.heads.recurrent.RecurrentHead`\\ s.

    Parameter counts: the paper's Keras count for HMDB51 (51 classes, 1024-d per stream, learned
    alpha) is 2,768,692 for GRU and 3,687,220 for LSTM. Keras GRU (``reset_after=False``) and
    LSTM keep one bias per gate; PyTorch keeps two (``b_ih`` and ``b_hh``). Per layer that adds
    3 x 256 (GRU) or 4 x 256 (LSTM), 4 recurrent layers in all: this head has 2,771,764
    (+3,072, +0.11%) and 3,691,316 (+4,096, +0.11%) parameters. For LSTM the second bias is
    redundant (it adds to the first); PyTorch's GRU applies the reset gate after the recurrent
    product, i.e. Keras ``reset_after=True``, which also keeps two biases.
    """

    def __init__(
        self,
        num_classes: int,
        input_dims: int | Sequence[int] = 1024,
        hidden: int | Sequence[int] = 256,
        num_layers: int = 2,
        cell: str = "gru",
        dropout: float = 0.0,
        fusion: str = "learned",
        pooling: str = "last",
        attention_dim: int | None = 128,
    ) -> None:
        super().__init__()
        if pooling not in ("last", "mean", "attention"):
            raise HeadError(
                f"two-stream pooling must be 'last', 'mean' or 'attention': {pooling!r}"
            )
        self.input_dims = _pair(input_dims)
        self.streams = nn.ModuleList(
            RecurrentEncoder(
                d,
                hidden,
                num_layers,
                cell,
                dropout=dropout,
                pooling=pooling,
                attention_dim=attention_dim,
            )
            for d in self.input_dims
        )
        self.fusion = WeightedAverageFusion(fusion)
        self.classifier = nn.Linear(self.streams[0].output_dim, num_classes)

    def features(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        x_b: Tensor | None = None,
        lengths_b: Tensor | None = None,
    ) -> Tensor:
        """Fused representation ``(B, hidden)``."""
        a, b = _split(x, x_b, self.input_dims)
        lengths_b = lengths if lengths_b is None else lengths_b
        return self.fusion(self.streams[0](a, lengths), self.streams[1](b, lengths_b))

    def forward(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        x_b: Tensor | None = None,
        lengths_b: Tensor | None = None,
    ) -> Tensor:
        return self.classifier(self.features(x, lengths, x_b, lengths_b))

    @property
    def streamable(self) -> bool:
        """Both streams are unidirectional, so :meth:`step` is always available."""
        return True

    def init_state(
        self,
        batch_size: int,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> dict:
        """Streaming state: one per stream."""
        return {
            "a": self.streams[0].init_state(batch_size, device, dtype),
            "b": self.streams[1].init_state(batch_size, device, dtype),
        }

    def step(self, x_t: Tensor, state: dict, x_t_b: Tensor | None = None) -> tuple[Tensor, dict]:
        """Feed one segment of both streams (separately, or concatenated in ``x_t``)."""
        a, b = _split(x_t, x_t_b, self.input_dims)
        ha, sa = self.streams[0].step(a, state["a"])
        hb, sb = self.streams[1].step(b, state["b"])
        return self.classifier(self.fusion(ha, hb)), {"a": sa, "b": sb}


class DualLayerAttentionHead(nn.Module):
    """Seed 004: features of two CNN layers (dims D1, D2, same T) -> one LSTM each -> per-step
    outputs concatenated -> temporal attention over the valid steps -> FC -> logits.

    ``forward(x, lengths, x_b)`` takes the two layers' features separately, or ``x`` alone as
    their concatenation along D. :meth:`attention` returns the per-step weights.
    """

    def __init__(
        self,
        input_dims: Sequence[int],
        num_classes: int,
        hidden: int | Sequence[int] = 256,
        num_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = False,
        dropout: float = 0.0,
        attention_dim: int | None = 128,
        fc: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.input_dims = _pair(input_dims)
        hidden_a, hidden_b = _pair(hidden)
        self.stacks = nn.ModuleList(
            [
                RecurrentStack(
                    self.input_dims[0], hidden_a, num_layers, cell, bidirectional, dropout
                ),
                RecurrentStack(
                    self.input_dims[1], hidden_b, num_layers, cell, bidirectional, dropout
                ),
            ]
        )
        fused = self.stacks[0].output_dim + self.stacks[1].output_dim
        self.pool = TemporalPool("attention", fused, attention_dim)
        self.dropout = nn.Dropout(dropout)
        self.fc, out_dim = _mlp(fused, fc, dropout)
        self.classifier = nn.Linear(out_dim, num_classes)

    def _sequence(
        self, x: Tensor, lengths: Tensor | None, x_b: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        a, b = _split(x, x_b, self.input_dims)
        if a.shape[:2] != b.shape[:2]:
            raise HeadError(
                f"both layers need the same (B, T), got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        lengths = check_lengths(a, lengths)
        seq_a, _ = self.stacks[0](a, lengths)
        seq_b, _ = self.stacks[1](b, lengths)
        return torch.cat([seq_a, seq_b], dim=-1), lengths

    def attention(
        self, x: Tensor, lengths: Tensor | None = None, x_b: Tensor | None = None
    ) -> Tensor:
        """Attention weights ``(B, T)`` over time; 0 after ``lengths``, each row sums to 1."""
        seq, lengths = self._sequence(x, lengths, x_b)
        return self.pool.weights(seq, lengths)

    def features(
        self, x: Tensor, lengths: Tensor | None = None, x_b: Tensor | None = None
    ) -> Tensor:
        """Penultimate representation (attention-pooled, after the FC layers)."""
        seq, lengths = self._sequence(x, lengths, x_b)
        return self.fc(self.dropout(self.pool(seq, lengths)))

    def forward(
        self, x: Tensor, lengths: Tensor | None = None, x_b: Tensor | None = None
    ) -> Tensor:
        return self.classifier(self.features(x, lengths, x_b))

    @property
    def streamable(self) -> bool:
        """True when :meth:`step` is available (unidirectional LSTMs)."""
        return not any(stack.bidirectional for stack in self.stacks)

    def init_state(
        self,
        batch_size: int,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> dict:
        """Streaming state (unidirectional only): both LSTMs and the online-softmax sums."""
        a = self.stacks[0].init_state(batch_size, device, dtype)
        b = self.stacks[1].init_state(batch_size, device, dtype)
        ref = a["h0"]
        pool = self.pool.init_state(batch_size, ref.device, ref.dtype)
        count = torch.zeros(batch_size, device=ref.device, dtype=torch.long)
        return {"a": a, "b": b, "pool": pool, "count": count}

    def step(self, x_t: Tensor, state: dict, x_t_b: Tensor | None = None) -> tuple[Tensor, dict]:
        """Feed one frame of both layers; return logits for the prefix so far."""
        a, b = _split(x_t, x_t_b, self.input_dims)
        ha, sa = self.stacks[0].step(a, state["a"])
        hb, sb = self.stacks[1].step(b, state["b"])
        count = state["count"] + 1
        pooled, pool = self.pool.step(torch.cat([ha, hb], dim=-1), state["pool"], count)
        logits = self.classifier(self.fc(self.dropout(pooled)))
        return logits, {"a": sa, "b": sb, "pool": pool, "count": count}
