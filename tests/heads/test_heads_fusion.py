"""Fusion: concat, learned weighted average, two-stream and dual-layer attention heads."""

from __future__ import annotations

import pytest
import torch

from harkit.heads import (
    ConcatFusion,
    DualLayerAttentionHead,
    HeadError,
    TwoStreamHead,
    WeightedAverageFusion,
    concat_features,
)

LENGTHS = torch.tensor([6, 2, 4])


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _garbage(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    for i, n in enumerate(lengths.tolist()):
        x[i, n:] = float("nan")
    return x


def test_concat_fusion_seed000_dims() -> None:
    irv2, googlenet = torch.randn(2, 5, 1536), torch.randn(2, 5, 1024)
    fused = ConcatFusion()(irv2, googlenet)
    assert fused.shape == (2, 5, 2560)
    torch.testing.assert_close(fused[..., 1536:], googlenet)
    with pytest.raises(HeadError):
        concat_features(irv2, torch.randn(2, 4, 1024))


def test_weighted_average_starts_at_half_and_computes_the_mix() -> None:
    fusion = WeightedAverageFusion()
    assert fusion.alpha.item() == pytest.approx(0.5)
    assert _n_params(fusion) == 1
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    with torch.no_grad():
        fusion.weight.fill_(1.3)
    alpha = torch.sigmoid(torch.tensor(1.3))
    torch.testing.assert_close(fusion(a, b), alpha * a + (1 - alpha) * b)
    with pytest.raises(HeadError):
        fusion(a, torch.randn(3, 5))


def test_average_mode_is_fixed_half() -> None:
    fusion = WeightedAverageFusion("average")
    assert _n_params(fusion) == 0
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    torch.testing.assert_close(fusion(a, b), (a + b) / 2)
    with pytest.raises(HeadError):
        WeightedAverageFusion("max")


@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_alpha_stays_in_unit_interval_under_optimisation(direction: float) -> None:
    fusion = WeightedAverageFusion()
    opt = torch.optim.SGD(fusion.parameters(), lr=50.0)
    a, b = torch.ones(4), torch.zeros(4)
    for _ in range(200):
        opt.zero_grad()
        # Pushes alpha towards +inf (direction 1) or -inf (direction -1).
        loss = -direction * 1000.0 * fusion(a, b).sum()
        loss.backward()
        opt.step()
        assert 0.0 <= fusion.alpha.item() <= 1.0
    assert (fusion.alpha.item() > 0.99) if direction > 0 else (fusion.alpha.item() < 0.01)


# Paper (Keras, one bias per gate), PyTorch (two biases per gate).
PAPER_COUNTS = [
    ({"cell": "gru", "hidden": 256, "num_layers": 2}, 2_768_692, 2_771_764),
    ({"cell": "lstm", "hidden": 256, "num_layers": 2}, 3_687_220, 3_691_316),
    ({"cell": "lstm", "hidden": 512, "num_layers": 1}, 6_321_716, 6_325_812),
]


@pytest.mark.parametrize(("kwargs", "paper", "ours"), PAPER_COUNTS)
def test_two_stream_parameter_counts_match_paper(kwargs: dict, paper: int, ours: int) -> None:
    head = TwoStreamHead(51, input_dims=1024, fusion="learned", **kwargs)
    n = _n_params(head)
    assert n == ours
    assert abs(n - paper) / paper < 0.002
    assert _n_params(TwoStreamHead(51, fusion="average", **kwargs)) == ours - 1


def _two_stream() -> TwoStreamHead:
    torch.manual_seed(0)
    return TwoStreamHead(5, input_dims=(6, 4), hidden=8).eval()


def test_two_stream_inputs_separate_or_concatenated() -> None:
    head = _two_stream()
    rgb, flow = torch.randn(3, 6, 6), torch.randn(3, 6, 4)
    with torch.no_grad():
        sep = head(rgb, LENGTHS, flow)
        cat = head(torch.cat([rgb, flow], -1), LENGTHS)
    assert sep.shape == (3, 5)
    torch.testing.assert_close(sep, cat)
    with pytest.raises(HeadError):
        head(torch.randn(3, 6, 9), LENGTHS)


def test_two_stream_fuses_stream_outputs_with_alpha() -> None:
    head = _two_stream()
    rgb, flow = torch.randn(3, 6, 6), torch.randn(3, 6, 4)
    with torch.no_grad():
        head.fusion.weight.fill_(-0.7)
        a, b = head.streams[0](rgb, LENGTHS), head.streams[1](flow, LENGTHS)
        alpha = torch.sigmoid(torch.tensor(-0.7))
        expected = head.classifier(alpha * a + (1 - alpha) * b)
        torch.testing.assert_close(head(rgb, LENGTHS, flow), expected)


def test_two_stream_padding_and_streaming() -> None:
    head = _two_stream()
    x = torch.randn(3, 6, 10)
    with torch.no_grad():
        ref = head(x, LENGTHS)
        torch.testing.assert_close(head(_garbage(x, LENGTHS), LENGTHS), ref)
        state = head.init_state(3)
        for t in range(6):
            logits, state = head.step(x[:, t], state)
            full = head(x[:, : t + 1], torch.full((3,), t + 1))
            torch.testing.assert_close(logits, full, atol=1e-5, rtol=1e-4)


def _dual(**kw) -> DualLayerAttentionHead:
    torch.manual_seed(0)
    return DualLayerAttentionHead((6, 4), 5, hidden=(8, 3), **kw).eval()


@pytest.mark.parametrize("bidirectional", [False, True])
def test_dual_layer_attention_shapes_and_padding(bidirectional: bool) -> None:
    head = _dual(bidirectional=bidirectional, fc=(7,))
    low, high = torch.randn(3, 6, 6), torch.randn(3, 6, 4)
    with torch.no_grad():
        out = head(low, LENGTHS, high)
        assert out.shape == (3, 5)
        torch.testing.assert_close(head(torch.cat([low, high], -1), LENGTHS), out)
        torch.testing.assert_close(
            head(_garbage(low, LENGTHS), LENGTHS, _garbage(high, LENGTHS)), out
        )
        assert head.features(low, LENGTHS, high).shape == (3, 7)
    assert head.stacks[0].layers[0].hidden_size == 8
    assert isinstance(head.stacks[1].layers[0], torch.nn.LSTM)


def test_dual_layer_attention_weights_cover_valid_steps_only() -> None:
    head = _dual()
    with torch.no_grad():
        w = head.attention(torch.randn(3, 6, 10), LENGTHS)
    assert w.shape == (3, 6)
    torch.testing.assert_close(w.sum(1), torch.ones(3))
    for i, n in enumerate(LENGTHS.tolist()):
        assert torch.all(w[i, n:] == 0)
        assert torch.all(w[i, :n] > 0)


def test_dual_layer_attention_streams() -> None:
    head = _dual()
    x = torch.randn(2, 5, 10)
    state = head.init_state(2)
    with torch.no_grad():
        for t in range(5):
            logits, state = head.step(x[:, t], state)
            full = head(x[:, : t + 1], torch.full((2,), t + 1))
            torch.testing.assert_close(logits, full, atol=1e-5, rtol=1e-4)


def test_dual_layer_needs_same_time_axis() -> None:
    with pytest.raises(HeadError):
        _dual()(torch.randn(3, 6, 6), LENGTHS, torch.randn(3, 5, 4))
