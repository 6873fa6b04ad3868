"""Recurrent temporal heads: ``(B, T, D)`` features + ``lengths`` -> ``(B, num_classes)`` logits.

The recurrent layers run over packed sequences, so the steps after ``lengths[b]`` never enter
the computation: padding (or garbage) cannot change a clip's logits. Unidirectional heads also
stream: ``init_state(batch_size)`` then ``step(x_t, state)`` per frame, O(1) work per frame,
equal to the full forward on the prefix seen so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from harkit.heads.pooling import (
    HeadError,
    TemporalPool,
    check_lengths,
    masked_mean,
    vote_logits,
)

__all__ = ["CELLS", "MeanPoolHead", "RecurrentEncoder", "RecurrentHead", "RecurrentStack"]

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


def _per_layer(value: int | str | Sequence, num_layers: int, what: str) -> list:
    if isinstance(value, (int, str)):
        return [value] * num_layers
    values = list(value)
    if not values:
        raise HeadError(f"{what} must not be empty")
    return values


def _mlp(in_dim: int, sizes: Sequence[int], dropout: float) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for size in sizes:
        layers += [nn.Linear(in_dim, size), nn.ReLU(), nn.Dropout(dropout)]
        in_dim = size
    return nn.Sequential(*layers), in_dim


class RecurrentStack(nn.Module):
    """Stacked GRU/LSTM layers; sizes and cell types may differ per layer.

    ``hidden`` is one size for ``num_layers`` equal layers or a list of per-layer sizes (seed
    000: ``[1000, 1000]``); ``cell`` is ``'gru'``/``'lstm'`` or a per-layer list (seed 003's
    stacked ``['lstm', 'gru']``). ``dropout`` applies between layers, as ``nn.GRU`` does.
    One ``nn.GRU``/``nn.LSTM`` module per layer, so parameter counts read per layer.
    """

    def __init__(
        self,
        input_dim: int,
        hidden: int | Sequence[int] = 256,
        num_layers: int = 1,
        cell: str | Sequence[str] = "gru",
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        sizes = _per_layer(hidden, num_layers, "hidden")
        if not isinstance(hidden, int) and num_layers not in (1, len(sizes)):
            raise HeadError(f"num_layers={num_layers} contradicts hidden sizes {sizes}")
        cells = _per_layer(cell, len(sizes), "cell")
        if len(cells) == 1:
            cells = cells * len(sizes)
        if len(cells) != len(sizes):
            raise HeadError(f"{len(cells)} cell types given for {len(sizes)} layers")
        for c in cells:
            if c not in CELLS:
                raise HeadError(f"unknown recurrent cell {c!r}; expected one of {sorted(CELLS)}")
        if any(int(s) < 1 for s in sizes):
            raise HeadError(f"hidden sizes must be positive, got {sizes}")
        self.input_dim = input_dim
        self.cells = list(cells)
        self.sizes = [int(s) for s in sizes]
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        layers = []
        in_dim = input_dim
        for c, size in zip(self.cells, self.sizes, strict=True):
            layers.append(CELLS[c](in_dim, size, batch_first=True, bidirectional=bidirectional))
            in_dim = size * self.num_directions
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = in_dim

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Return per-step outputs ``(B, T, F)`` (zeros after ``lengths``) and the final state
        ``(B, F)``: the last valid step, and for bidirectional layers forward-last +
        backward-first (the backward direction's state after reading back to step 0)."""
        t = x.shape[1]
        # Full-length batches skip packing: same result, faster, and exportable.
        if lengths is None or bool((lengths == t).all()):
            out = x
            for i, layer in enumerate(self.layers):
                if i:
                    out = self.dropout(out)
                out, h_n = layer(out)
            return out, self._final(h_n, x.shape[0])
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        for i, layer in enumerate(self.layers):
            if i:
                packed = packed._replace(data=self.dropout(packed.data))
            packed, h_n = layer(packed)
        out, _ = pad_packed_sequence(packed, batch_first=True, total_length=t)
        return out, self._final(h_n, x.shape[0])

    def _final(self, h_n: Tensor | tuple[Tensor, Tensor], batch: int) -> Tensor:
        h = h_n[0] if isinstance(h_n, tuple) else h_n  # LSTM: (h, c)
        # (directions, B, H) -> (B, directions * H), the same layout as the per-step outputs.
        return h.transpose(0, 1).reshape(batch, -1)

    def init_state(
        self,
        batch_size: int,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> dict[str, Tensor]:
        """Zero hidden (and LSTM cell) state per layer for :meth:`step`."""
        if self.bidirectional:
            raise HeadError("a bidirectional recurrent head cannot stream one frame at a time")
        ref = next(self.parameters())
        device, dtype = device or ref.device, dtype or ref.dtype
        state = {}
        for i, (c, size) in enumerate(zip(self.cells, self.sizes, strict=True)):
            state[f"h{i}"] = torch.zeros(1, batch_size, size, device=device, dtype=dtype)
            if c == "lstm":
                state[f"c{i}"] = torch.zeros(1, batch_size, size, device=device, dtype=dtype)
        return state

    def step(self, x_t: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Advance every layer by one step: ``x_t: (B, D)`` -> top-layer output ``(B, F)``."""
        if self.bidirectional:
            raise HeadError("a bidirectional recurrent head cannot stream one frame at a time")
        out = x_t.unsqueeze(1)
        new: dict[str, Tensor] = {}
        for i, (c, layer) in enumerate(zip(self.cells, self.layers, strict=True)):
            if i:
                out = self.dropout(out)
            if c == "lstm":
                out, (h, cell) = layer(out, (state[f"h{i}"], state[f"c{i}"]))
                new[f"h{i}"], new[f"c{i}"] = h, cell
            else:
                out, new[f"h{i}"] = layer(out, state[f"h{i}"])
        return out.squeeze(1), new


class RecurrentEncoder(nn.Module):
    """Recurrent stack -> temporal pooling -> dropout -> optional FC layers (ReLU).

    Everything of a recurrent head except its classifier: its output is the penultimate
    representation that stream fusion combines. ``pooling='none'`` keeps every step
    (``forward`` is then unavailable; use :meth:`steps`).
    """

    def __init__(
        self,
        input_dim: int,
        hidden: int | Sequence[int] = 256,
        num_layers: int = 1,
        cell: str | Sequence[str] = "gru",
        bidirectional: bool = False,
        dropout: float = 0.0,
        fc: Sequence[int] = (),
        pooling: str = "last",
        attention_dim: int | None = 128,
    ) -> None:
        super().__init__()
        self.stack = RecurrentStack(input_dim, hidden, num_layers, cell, bidirectional, dropout)
        self.pooling = pooling
        self.pool = (
            None
            if pooling == "none"
            else TemporalPool(pooling, self.stack.output_dim, attention_dim)
        )
        self.dropout = nn.Dropout(dropout)
        self.fc, self.output_dim = _mlp(self.stack.output_dim, fc, dropout)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Pooled representation ``(B, output_dim)``."""
        if self.pool is None:
            raise HeadError("pooling='none' keeps every step; call steps() instead")
        lengths = check_lengths(x, lengths)
        seq, last = self.stack(x, lengths)
        pooled = self.pool(seq, lengths, last if self.pooling == "last" else None)
        return self.fc(self.dropout(pooled))

    def steps(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Per-step representation ``(B, T, output_dim)``; values after ``lengths`` are junk."""
        lengths = check_lengths(x, lengths)
        seq, _ = self.stack(x, lengths)
        return self.fc(self.dropout(seq))

    def init_state(
        self,
        batch_size: int,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> dict:
        """Streaming state: recurrent state, pooling accumulators, step count."""
        rnn = self.stack.init_state(batch_size, device, dtype)
        ref = next(iter(rnn.values()))
        pool = {} if self.pool is None else self.pool.init_state(batch_size, ref.device, ref.dtype)
        count = torch.zeros(batch_size, device=ref.device, dtype=torch.long)
        return {"rnn": rnn, "pool": pool, "count": count}

    def step(self, x_t: Tensor, state: dict) -> tuple[Tensor, dict]:
        """One step ``(B, D)`` -> representation of the prefix so far (the step itself when
        ``pooling='none'``)."""
        out, rnn = self.stack.step(x_t, state["rnn"])
        count = state["count"] + 1
        pool = state["pool"]
        if self.pool is not None:
            out, pool = self.pool.step(out, pool, count)
        return self.fc(self.dropout(out)), {"rnn": rnn, "pool": pool, "count": count}


class RecurrentHead(nn.Module):
    """Stacked GRU/LSTM head (seeds 000, 002, 003): features -> RNN -> pooling -> FC -> logits.

    Args:
        input_dim: feature size ``D``.
        num_classes: number of actions.
        hidden: units per layer, or a list of per-layer sizes (seed 000: ``[1000, 1000]``).
        num_layers: layer count when ``hidden`` is one size.
        cell: ``'gru'`` | ``'lstm'`` (or a per-layer list).
        bidirectional: bidirectional layers (seed 002); such heads cannot stream.
        dropout: between recurrent layers, after pooling and after each FC layer.
        fc: sizes of ReLU FC layers before the classifier (seed 002: ``[256]``).
        pooling: ``'last'`` (last valid step; bidirectional: forward-last + backward-first),
            ``'mean'`` (masked mean), ``'attention'`` (learned score per step, masked softmax),
            ``'vote'`` (seed 002's most frequent frame label: each step is classified, see
            :meth:`forward_steps` for training; ``forward`` returns :func:`vote_logits`, the
            log of the vote frequencies with ties broken by mean probability).
        attention_dim: hidden size of the attention scorer (None: one linear score).
    """

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        hidden: int | Sequence[int] = 256,
        num_layers: int = 1,
        cell: str | Sequence[str] = "gru",
        bidirectional: bool = False,
        dropout: float = 0.0,
        fc: Sequence[int] = (),
        pooling: str = "last",
        attention_dim: int | None = 128,
    ) -> None:
        super().__init__()
        if pooling not in ("last", "mean", "attention", "vote"):
            raise HeadError(
                f"unknown pooling {pooling!r}; expected 'last', 'mean', 'attention' or 'vote'"
            )
        if num_classes < 1:
            raise HeadError(f"num_classes must be positive, got {num_classes}")
        self.pooling = pooling
        self.num_classes = num_classes
        self.encoder = RecurrentEncoder(
            input_dim,
            hidden,
            num_layers,
            cell,
            bidirectional,
            dropout,
            fc,
            "none" if pooling == "vote" else pooling,
            attention_dim,
        )
        self.classifier = nn.Linear(self.encoder.output_dim, num_classes)

    @property
    def streamable(self) -> bool:
        """True when :meth:`init_state` / :meth:`step` are available (unidirectional)."""
        return not self.encoder.stack.bidirectional

    def features(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Penultimate representation ``(B, encoder.output_dim)`` (not for ``'vote'``)."""
        if self.pooling == "vote":
            raise HeadError("a 'vote' head has per-step representations only; use forward_steps")
        return self.encoder(x, lengths)

    def forward_steps(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Per-step logits ``(B, T, C)`` (train 'vote' heads on these with
        :func:`masked_step_cross_entropy`). With a unidirectional stack, step ``t`` sees only
        steps ``<= t``; values after ``lengths`` are junk."""
        return self.classifier(self.encoder.steps(x, lengths))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if self.pooling == "vote":
            lengths = check_lengths(x, lengths)
            return vote_logits(self.forward_steps(x, lengths), lengths)
        return self.classifier(self.encoder(x, lengths))

    def init_state(
        self,
        batch_size: int,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> dict:
        """Streaming state for :meth:`step` (unidirectional heads only)."""
        state = self.encoder.init_state(batch_size, device, dtype)
        if self.pooling == "vote":
            ref = state["rnn"]["h0"]
            zeros = torch.zeros(batch_size, self.num_classes, device=ref.device, dtype=ref.dtype)
            state["votes"], state["prob_sum"] = zeros, zeros.clone()
        return state

    def step(self, x_t: Tensor, state: dict) -> tuple[Tensor, dict]:
        """Feed one frame's features ``(B, D)``; return the logits for the prefix so far."""
        h, new = self.encoder.step(x_t, state)
        logits = self.classifier(h)
        if self.pooling != "vote":
            return logits, new
        votes = state["votes"] + nn.functional.one_hot(logits.argmax(-1), self.num_classes).to(
            logits.dtype
        )
        prob_sum = state["prob_sum"] + torch.softmax(logits, dim=-1)
        n = new["count"].to(logits.dtype).unsqueeze(-1)
        new["votes"], new["prob_sum"] = votes, prob_sum
        return torch.log((votes + 0.5 * prob_sum / n) / (n + 0.5)), new


class MeanPoolHead(nn.Module):
    """Order-agnostic baseline: a masked statistic over time -> MLP (ReLU) -> logits.

    ``statistic='mean'`` pools the mean of the valid steps; ``'std'`` their spread around it
    (what changes in the clip, the order-free counterpart of temporal centering: the mean of
    centred steps is 0). Shuffling the valid steps cannot change either, so any gap between
    this head and a recurrent one measures what temporal order contributes.
    """

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        hidden: Sequence[int] = (256,),
        dropout: float = 0.0,
        statistic: Literal["mean", "std"] = "mean",
    ) -> None:
        super().__init__()
        self.statistic = statistic
        self.mlp, out_dim = _mlp(input_dim, hidden, dropout)
        self.classifier = nn.Linear(out_dim, num_classes)

    streamable = False  # the statistic needs the whole clip

    def features(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Penultimate representation (MLP output of the pooled statistic)."""
        lengths = check_lengths(x, lengths)
        mean = masked_mean(x, lengths)
        if self.statistic == "std":
            # eps keeps the gradient finite where a feature never changes
            mean = (masked_mean((x - mean.unsqueeze(1)) ** 2, lengths) + 1e-6).sqrt()
        return self.mlp(mean)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.classifier(self.features(x, lengths))
