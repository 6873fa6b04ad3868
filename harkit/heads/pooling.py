"""Masks and temporal pooling over padded sequences ``(B, T, F)`` with ``lengths: (B,)``.

Every pooling here reads only the first ``lengths[b]`` steps of row ``b``, so anything written
after them (padding, garbage) cannot change the result. Each pooling also has a streaming form
(``init_state`` / ``step``) that consumes one step at a time with O(1) work and equals the
batch form on the prefix seen so far.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harkit.errors import HarkitError

__all__ = [
    "POOLINGS",
    "HeadError",
    "TemporalPool",
    "check_lengths",
    "last_valid",
    "length_mask",
    "masked_mean",
    "masked_softmax",
    "masked_step_cross_entropy",
    "vote_logits",
]

POOLINGS = ("last", "mean", "attention", "vote")


class HeadError(HarkitError, ValueError):
    """A head was configured or called with inputs it cannot handle."""


def check_lengths(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Return ``lengths`` as int64 on ``x``'s device (all ``T`` when None) after validating it."""
    if x.dim() != 3:
        raise HeadError(f"expected features of shape (B, T, D), got {tuple(x.shape)}")
    b, t = x.shape[0], x.shape[1]
    if lengths is None:
        return torch.full((b,), t, dtype=torch.long, device=x.device)
    if lengths.dim() != 1 or lengths.shape[0] != b:
        raise HeadError(f"lengths must have shape ({b},), got {tuple(lengths.shape)}")
    lengths = lengths.to(device=x.device, dtype=torch.long)
    if b and (int(lengths.min()) < 1 or int(lengths.max()) > t):
        raise HeadError(f"lengths must lie in [1, {t}], got {lengths.tolist()}")
    return lengths


def length_mask(lengths: Tensor, max_len: int) -> Tensor:
    """Boolean ``(B, max_len)`` mask, True on valid steps."""
    steps = torch.arange(max_len, device=lengths.device)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)


def last_valid(seq: Tensor, lengths: Tensor) -> Tensor:
    """``seq[b, lengths[b] - 1]`` for every row: ``(B, T, F) -> (B, F)``."""
    index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, seq.shape[-1])
    return seq.gather(1, index).squeeze(1)


def masked_mean(seq: Tensor, lengths: Tensor) -> Tensor:
    """Mean over the valid steps: ``(B, T, F) -> (B, F)``."""
    mask = length_mask(lengths, seq.shape[1]).unsqueeze(-1)
    # where() rather than multiply so that NaN/inf garbage in padding cannot leak in.
    total = torch.where(mask, seq, torch.zeros_like(seq)).sum(dim=1)
    return total / lengths.to(seq.dtype).unsqueeze(-1)


def masked_softmax(scores: Tensor, lengths: Tensor) -> Tensor:
    """Softmax over time of ``scores: (B, T)`` with padded steps given weight exactly 0."""
    mask = length_mask(lengths, scores.shape[1])
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=1)


def vote_logits(step_logits: Tensor, lengths: Tensor) -> Tensor:
    """Majority vote of per-step argmax, returned as log-probabilities ``(B, C)``.

    ``p[c] = (votes[c] + 0.5 * mean_prob[c]) / (n + 0.5)`` where ``votes`` counts the valid steps
    whose argmax is ``c`` and ``mean_prob`` is the mean per-step softmax. ``p`` sums to 1, its
    argmax is always a most-voted class (the tie-break term is < 1 vote), ties go to the class
    with the higher mean probability, and ``log(p)`` is finite.
    """
    mask = length_mask(lengths, step_logits.shape[1])
    num_classes = step_logits.shape[-1]
    safe = torch.where(mask.unsqueeze(-1), step_logits, torch.zeros_like(step_logits))
    votes = F.one_hot(safe.argmax(-1), num_classes).to(step_logits.dtype)
    votes = (votes * mask.unsqueeze(-1).to(votes.dtype)).sum(1)
    mean_prob = masked_mean(torch.softmax(safe, dim=-1), lengths)
    n = lengths.to(step_logits.dtype).unsqueeze(-1)
    return torch.log((votes + 0.5 * mean_prob) / (n + 0.5))


def masked_step_cross_entropy(step_logits: Tensor, lengths: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of every valid step against its clip's label (``'vote'`` training loss).

    Averaged over the valid steps of each clip, then over clips, so long clips do not dominate.
    """
    b, t, c = step_logits.shape
    mask = length_mask(lengths.to(step_logits.device), t)
    safe = torch.where(mask.unsqueeze(-1), step_logits, torch.zeros_like(step_logits))
    per_step = F.cross_entropy(
        safe.reshape(b * t, c), targets.repeat_interleave(t), reduction="none"
    ).view(b, t)
    per_step = torch.where(mask, per_step, torch.zeros_like(per_step))
    return (per_step.sum(1) / mask.sum(1).to(per_step.dtype)).mean()


class TemporalPool(nn.Module):
    """``'last'`` | ``'mean'`` | ``'attention'`` pooling of ``(B, T, F)`` into ``(B, F)``.

    ``'attention'`` learns a score per step, ``v^T tanh(W h_t + b)`` (a single linear score when
    ``attention_dim`` is None), and returns the softmax-weighted sum over the valid steps.
    ``'last'`` takes the last valid step, or the ``last`` tensor when the caller passes one
    (a bidirectional RNN's forward-last + backward-first state).
    """

    def __init__(self, kind: str, dim: int, attention_dim: int | None = 128) -> None:
        super().__init__()
        if kind not in ("last", "mean", "attention"):
            raise HeadError(f"unknown pooling {kind!r}; expected 'last', 'mean' or 'attention'")
        self.kind = kind
        self.dim = dim
        self.score: nn.Module | None = None
        if kind == "attention":
            if attention_dim is None:
                self.score = nn.Linear(dim, 1)
            else:
                self.score = nn.Sequential(
                    nn.Linear(dim, attention_dim), nn.Tanh(), nn.Linear(attention_dim, 1)
                )

    def weights(self, seq: Tensor, lengths: Tensor) -> Tensor:
        """Attention weights ``(B, T)``, 0 on padded steps (attention pooling only)."""
        if self.score is None:
            raise HeadError(f"{self.kind!r} pooling has no attention weights")
        return masked_softmax(self.score(seq).squeeze(-1), lengths)

    def forward(self, seq: Tensor, lengths: Tensor, last: Tensor | None = None) -> Tensor:
        if self.kind == "last":
            return last if last is not None else last_valid(seq, lengths)
        if self.kind == "mean":
            return masked_mean(seq, lengths)
        w = self.weights(seq, lengths)
        mask = length_mask(lengths, seq.shape[1]).unsqueeze(-1)
        seq = torch.where(mask, seq, torch.zeros_like(seq))
        return (w.unsqueeze(-1) * seq).sum(1)

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> dict:
        """Accumulators for :meth:`step` (empty for ``'last'``)."""
        if self.kind == "mean":
            return {"sum": torch.zeros(batch_size, self.dim, device=device, dtype=dtype)}
        if self.kind == "attention":
            return {
                "max": torch.full((batch_size,), float("-inf"), device=device, dtype=dtype),
                "num": torch.zeros(batch_size, self.dim, device=device, dtype=dtype),
                "den": torch.zeros(batch_size, device=device, dtype=dtype),
            }
        return {}

    def step(self, h_t: Tensor, state: dict, count: Tensor) -> tuple[Tensor, dict]:
        """Fold one step ``h_t: (B, F)`` in; ``count`` is the number of steps seen including it."""
        if self.kind == "last":
            return h_t, state
        if self.kind == "mean":
            total = state["sum"] + h_t
            return total / count.to(h_t.dtype).unsqueeze(-1), {"sum": total}
        # Online softmax: rescale the running sums whenever the running max score grows.
        assert self.score is not None
        e = self.score(h_t).squeeze(-1)
        new_max = torch.maximum(state["max"], e)
        old_scale = torch.exp(state["max"] - new_max)
        new_scale = torch.exp(e - new_max)
        num = state["num"] * old_scale.unsqueeze(-1) + new_scale.unsqueeze(-1) * h_t
        den = state["den"] * old_scale + new_scale
        return num / den.unsqueeze(-1), {"max": new_max, "num": num, "den": den}
