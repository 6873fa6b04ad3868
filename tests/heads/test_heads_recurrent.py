"""RecurrentHead / MeanPoolHead: shapes, padding invariance, streaming, vote, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harkit.errors import HarkitError
from harkit.heads import (
    HeadError,
    MeanPoolHead,
    RecurrentHead,
    RecurrentStack,
    masked_step_cross_entropy,
    vote_logits,
)

B, T, D, C = 4, 7, 5, 3
LENGTHS = torch.tensor([7, 3, 1, 5])


def _x(seed: int = 0, b: int = B, t: int = T, d: int = D) -> torch.Tensor:
    return torch.randn(b, t, d, generator=torch.Generator().manual_seed(seed))


def _with_garbage(x: torch.Tensor, lengths: torch.Tensor, value: float) -> torch.Tensor:
    x = x.clone()
    for i, n in enumerate(lengths.tolist()):
        x[i, n:] = value
    return x


def _head(pooling: str, cell: str = "gru", bidirectional: bool = False, **kw) -> RecurrentHead:
    torch.manual_seed(0)
    head = RecurrentHead(
        D, C, hidden=6, num_layers=2, cell=cell, bidirectional=bidirectional, pooling=pooling, **kw
    )
    return head.eval()


HEAD_CASES = [
    (pooling, cell, bi)
    for pooling in ("last", "mean", "attention", "vote")
    for cell in ("gru", "lstm")
    for bi in (False, True)
]


@pytest.mark.parametrize(("pooling", "cell", "bi"), HEAD_CASES)
def test_shapes_every_pooling(pooling: str, cell: str, bi: bool) -> None:
    head = _head(pooling, cell, bi, fc=(4,))
    logits = head(_x(), LENGTHS)
    assert logits.shape == (B, C)
    assert torch.isfinite(logits).all()
    assert head.forward_steps(_x(), LENGTHS).shape == (B, T, C)
    if pooling != "vote":
        assert head.features(_x(), LENGTHS).shape == (B, 4)


@pytest.mark.parametrize(("pooling", "cell", "bi"), HEAD_CASES)
def test_padding_cannot_change_logits(pooling: str, cell: str, bi: bool) -> None:
    head = _head(pooling, cell, bi)
    x = _x()
    with torch.no_grad():
        ref = head(_with_garbage(x, LENGTHS, 0.0), LENGTHS)
        for garbage in (1e4, float("nan"), -3.0):
            out = head(_with_garbage(x, LENGTHS, garbage), LENGTHS)
            torch.testing.assert_close(out, ref)
        # Each clip alone, unpadded, gives the same logits as inside the padded batch.
        for i, n in enumerate(LENGTHS.tolist()):
            alone = head(x[i : i + 1, :n], torch.tensor([n]))
            torch.testing.assert_close(alone, ref[i : i + 1], atol=1e-5, rtol=1e-4)


def test_bidirectional_last_is_forward_last_and_backward_first() -> None:
    torch.manual_seed(0)
    stack = RecurrentStack(D, 6, bidirectional=True).eval()
    x = _x()
    with torch.no_grad():
        seq, last = stack(x, LENGTHS)
    for i, n in enumerate(LENGTHS.tolist()):
        torch.testing.assert_close(last[i, :6], seq[i, n - 1, :6])
        torch.testing.assert_close(last[i, 6:], seq[i, 0, 6:])
        assert torch.all(seq[i, n:] == 0)


@pytest.mark.parametrize("pooling", ["last", "mean", "attention", "vote"])
@pytest.mark.parametrize("cell", ["gru", "lstm", ["lstm", "gru"]])
def test_step_equals_forward_on_every_prefix(pooling: str, cell) -> None:
    torch.manual_seed(1)
    head = RecurrentHead(D, C, hidden=[6, 5], cell=cell, pooling=pooling, fc=(4,)).eval()
    assert head.streamable
    x = _x(seed=3)
    state = head.init_state(B)
    with torch.no_grad():
        for t in range(T):
            logits, state = head.step(x[:, t], state)
            full = head(x[:, : t + 1], torch.full((B,), t + 1))
            torch.testing.assert_close(logits, full, atol=1e-5, rtol=1e-4)


def test_forward_steps_prefix_semantics_for_unidirectional() -> None:
    head = _head("last")
    x = _x()
    with torch.no_grad():
        steps = head.forward_steps(x)
        for t in (0, 2, 6):
            prefix = head(x[:, : t + 1], torch.full((B,), t + 1))
            torch.testing.assert_close(steps[:, t], prefix, atol=1e-5, rtol=1e-4)


def test_bidirectional_head_refuses_to_stream() -> None:
    head = _head("last", bidirectional=True)
    assert not head.streamable
    with pytest.raises(HarkitError):
        head.init_state(2)


def test_vote_is_majority_of_step_argmax() -> None:
    step_logits = torch.tensor(
        [
            [[5.0, 0, 0], [0, 5, 0], [0, 5, 0], [0, 0, 9], [0, 0, 50]],  # 2 votes for 1 (of 4)
            [[0, 0, 1.0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]],  # length 1 -> class 2
        ]
    )
    lengths = torch.tensor([4, 1])
    out = vote_logits(step_logits, lengths)
    assert out.argmax(-1).tolist() == [1, 2]
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(2))
    # 2 votes of 4 for class 1: p = (2 + 0.5 * mean_prob) / 4.5, the largest.
    assert out.exp()[0, 1] > 2 / 4.5


def test_vote_tie_broken_by_mean_probability() -> None:
    step_logits = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])  # one vote each; class 0 surer
    assert vote_logits(step_logits, torch.tensor([2])).argmax(-1).item() == 0


def test_vote_head_forward_matches_its_steps() -> None:
    head = _head("vote")
    x = _x()
    with torch.no_grad():
        steps = head.forward_steps(x, LENGTHS).argmax(-1)
        out = head(x, LENGTHS).argmax(-1)
    for i, n in enumerate(LENGTHS.tolist()):
        counts = torch.bincount(steps[i, :n], minlength=C)
        assert counts[out[i]] == counts.max()


def test_step_cross_entropy_ignores_padding() -> None:
    step_logits = torch.randn(2, 4, 3)
    targets = torch.tensor([0, 2])
    lengths = torch.tensor([2, 4])
    loss = masked_step_cross_entropy(step_logits, lengths, targets)
    garbage = step_logits.clone()
    garbage[0, 2:] = float("nan")
    torch.testing.assert_close(masked_step_cross_entropy(garbage, lengths, targets), loss)
    ce = nn.functional.cross_entropy
    expected = (
        ce(step_logits[0, :2], targets[[0, 0]]) + ce(step_logits[1], targets[[1, 1, 1, 1]])
    ) / 2
    torch.testing.assert_close(loss, expected)


def test_per_layer_sizes_build_one_module_per_layer() -> None:
    head = RecurrentHead(2560, 101, hidden=[1000, 1000])  # seed 000's deep GRU
    layers = head.encoder.stack.layers
    assert [(m.input_size, m.hidden_size) for m in layers] == [(2560, 1000), (1000, 1000)]
    assert all(isinstance(m, nn.GRU) for m in layers)
    bilstm = RecurrentHead(
        512, 101, hidden=512, num_layers=3, cell="lstm", bidirectional=True, fc=(256,)
    )  # seed 002
    assert bilstm.encoder.output_dim == 256
    assert bilstm.encoder.stack.layers[1].input_size == 1024


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pooling": "max"},
        {"cell": "rnn"},
        {"hidden": [4, 4], "num_layers": 3},
        {"hidden": [4, 4], "cell": ["gru", "lstm", "gru"]},
        {"num_classes": 0},
    ],
)
def test_bad_config_raises_harkit_error(kwargs: dict) -> None:
    args = {"input_dim": D, "num_classes": C, **kwargs}
    with pytest.raises(HeadError):
        RecurrentHead(**args)


@pytest.mark.parametrize(
    "lengths", [torch.tensor([0, 1, 1, 1]), torch.tensor([8, 1, 1, 1]), torch.tensor([1, 1])]
)
def test_bad_lengths_raise_harkit_error(lengths: torch.Tensor) -> None:
    with pytest.raises(HarkitError):
        _head("mean")(_x(), lengths)


def test_no_lengths_means_full_length() -> None:
    head = _head("attention")
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(head(x), head(x, torch.full((B,), T)))


def test_mean_pool_head_ignores_order_and_padding() -> None:
    torch.manual_seed(0)
    head = MeanPoolHead(D, C, hidden=(8,)).eval()
    x = _x()
    with torch.no_grad():
        ref = head(x, LENGTHS)
        assert ref.shape == (B, C)
        torch.testing.assert_close(head(_with_garbage(x, LENGTHS, float("nan")), LENGTHS), ref)
        shuffled = x.clone()
        shuffled[0] = x[0, torch.randperm(T)]  # row 0 is full length
        torch.testing.assert_close(head(shuffled, LENGTHS)[0], ref[0])
