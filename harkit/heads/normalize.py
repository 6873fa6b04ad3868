"""Causal temporal centering: subtract from each step the mean of the steps so far.

Removing the running mean takes away what stays constant in a clip (background, the actor's
colour and size) and keeps what changes, the way online cepstral mean normalisation does for
speech. It is causal, so a streaming head stepping one frame at a time sees exactly what the
full forward saw, and padding after ``lengths`` cannot leak into earlier steps.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["CenteredHead", "causal_center"]


def causal_center(x: Tensor) -> Tensor:
    """``x_t - mean(x_1..x_t)`` along dim 1 of ``(B, T, D)``."""
    steps = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype).view(1, -1, 1)
    return x - x.cumsum(dim=1) / steps


class CenteredHead(nn.Module):
    """Any head with its input causally centered; streaming state carries the running sum."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    @property
    def streamable(self) -> bool:
        return bool(self.head.streamable)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.head(causal_center(x), lengths)

    def forward_steps(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.head.forward_steps(causal_center(x), lengths)

    def init_state(self, batch_size: int, device=None, dtype=None) -> dict:
        return {"inner": self.head.init_state(batch_size, device, dtype), "sum": None, "count": 0}

    def step(self, x_t: Tensor, state: dict) -> tuple[Tensor, dict]:
        total = x_t if state["sum"] is None else state["sum"] + x_t
        count = state["count"] + 1
        logits, inner = self.head.step(x_t - total / count, state["inner"])
        return logits, {"inner": inner, "sum": total, "count": count}
