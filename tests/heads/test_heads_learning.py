"""Heads learn: a tiny batch overfits, and order matters (GRU beats the mean-pool baseline)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harkit.heads import MeanPoolHead, RecurrentHead, masked_step_cross_entropy


def _fit(head: nn.Module, x, lengths, y, steps: int, lr: float = 1e-2, vote: bool = False):
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    head.train()
    for _ in range(steps):
        opt.zero_grad()
        if vote:
            loss = masked_step_cross_entropy(head.forward_steps(x, lengths), lengths, y)
        else:
            loss = nn.functional.cross_entropy(head(x, lengths), y)
        loss.backward()
        opt.step()
    head.eval()


def _accuracy(head: nn.Module, x, lengths, y) -> float:
    with torch.no_grad():
        return (head(x, lengths).argmax(-1) == y).float().mean().item()


@pytest.mark.parametrize(
    ("pooling", "cell", "bidirectional"),
    [
        ("last", "gru", False),
        ("attention", "lstm", False),
        ("mean", "gru", True),
        ("vote", "gru", False),
    ],
)
def test_tiny_batch_overfits(pooling: str, cell: str, bidirectional: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 6, 8)
    lengths = torch.randint(2, 7, (16,))
    y = torch.arange(16) % 4
    head = RecurrentHead(8, 4, hidden=16, cell=cell, bidirectional=bidirectional, pooling=pooling)
    _fit(head, x, lengths, y, steps=150, lr=3e-2, vote=pooling == "vote")
    assert _accuracy(head, x, lengths, y) == 1.0


def _moving_dot(n: int, seed: int, positions: int = 8):
    """A dot on a ring of ``positions`` cells moves one cell per step, right (class 1) or left
    (class 0), from a random start, for 4..8 steps. Both classes visit the same distribution
    of cell sets (contiguous arcs), so only the order tells them apart."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    start = torch.randint(0, positions, (n,), generator=g)
    lengths = torch.randint(4, positions + 1, (n,), generator=g)
    direction = torch.where(y == 1, 1, -1)
    steps = torch.arange(positions)
    cells = (start[:, None] + direction[:, None] * steps[None, :]) % positions
    x = nn.functional.one_hot(cells, positions).float()
    x = x + 0.1 * torch.randn(x.shape, generator=g)
    return x, lengths, y


def test_gru_learns_time_order_that_mean_pooling_cannot() -> None:
    x_tr, l_tr, y_tr = _moving_dot(256, seed=1)
    x_te, l_te, y_te = _moving_dot(256, seed=2)

    torch.manual_seed(0)
    gru = RecurrentHead(8, 2, hidden=16)
    _fit(gru, x_tr, l_tr, y_tr, steps=150)
    torch.manual_seed(0)
    baseline = MeanPoolHead(8, 2, hidden=(32,))
    _fit(baseline, x_tr, l_tr, y_tr, steps=150)

    assert _accuracy(gru, x_te, l_te, y_te) > 0.9
    assert _accuracy(baseline, x_te, l_te, y_te) < 0.65
