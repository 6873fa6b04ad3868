import pytest
import torch

from harkit.heads import CenteredHead, MeanPoolHead, RecurrentHead, TwoStreamHead, causal_center


def test_causal_center_subtracts_the_running_mean():
    x = torch.tensor([[[1.0], [3.0], [8.0]]])
    torch.testing.assert_close(causal_center(x), torch.tensor([[[0.0], [1.0], [4.0]]]))
    # A constant offset (static appearance) disappears entirely.
    y = torch.randn(2, 5, 4)
    torch.testing.assert_close(causal_center(y + 7.0), causal_center(y))


def test_centered_head_streams_exactly_like_its_forward():
    torch.manual_seed(0)
    head = CenteredHead(RecurrentHead(6, 3, hidden=8, num_layers=2)).eval()
    x = torch.randn(2, 7, 6)
    state = head.init_state(2)
    with torch.no_grad():
        for t in range(7):
            logits, state = head.step(x[:, t], state)
            torch.testing.assert_close(logits, head(x[:, : t + 1]), atol=1e-5, rtol=1e-5)


def test_padding_cannot_leak_into_centered_steps():
    torch.manual_seed(0)
    head = CenteredHead(RecurrentHead(4, 2, hidden=8)).eval()
    x = torch.randn(1, 5, 4)
    padded = torch.cat([x, torch.full((1, 3, 4), 1e4)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(head(x), head(padded, torch.tensor([5])))


def test_streamable_flags():
    assert CenteredHead(RecurrentHead(4, 2)).streamable
    assert not CenteredHead(RecurrentHead(4, 2, bidirectional=True)).streamable
    assert not MeanPoolHead(4, 2).streamable and TwoStreamHead(2, input_dims=4).streamable


@pytest.mark.parametrize("center", [False, True])
def test_mean_head_is_order_agnostic_with_or_without_centering(center):
    # The order-agnostic baseline: shuffling the valid steps must not change its output,
    # and padding must not leak in. Causal centering failed this (76-86% within reversed pairs).
    from harkit.models.builder import build_head
    from harkit.models.recipe import MeanHeadConfig

    torch.manual_seed(0)
    head = build_head(MeanHeadConfig(center=center), [6], 3).eval()
    x = torch.randn(2, 7, 6) * 3 + 1
    shuffled = x[:, torch.randperm(7)]
    reversed_ = x.flip(1)
    padded = torch.cat([x, torch.full((2, 2, 6), 1e4)], dim=1)
    with torch.no_grad():
        out = head(x)
        torch.testing.assert_close(head(shuffled), out)
        torch.testing.assert_close(head(reversed_), out)
        torch.testing.assert_close(head(padded, torch.tensor([7, 7])), out)
        # centred: a constant offset (static appearance) is removed
        if center:
            torch.testing.assert_close(head(x + 5.0), out, atol=1e-5, rtol=1e-4)


def test_normalized_head_normalises_each_source_on_its_own():
    from harkit.heads import NormalizedHead

    torch.manual_seed(0)
    head = NormalizedHead(TwoStreamHead(3, input_dims=(6, 2), hidden=8, num_layers=1), (6, 2))
    head.eval()
    x = torch.randn(2, 5, 8)
    # sources rescaled and shifted by different amounts: each is normalised alone
    scaled = torch.cat([x[..., :6] * 1000 + 50, x[..., 6:] * 20 - 3], dim=-1)
    with torch.no_grad():
        torch.testing.assert_close(head(scaled), head(x), atol=1e-4, rtol=1e-4)
        state = head.init_state(2)
        for t in range(5):  # streams exactly like its forward
            logits, state = head.step(x[:, t], state)
            torch.testing.assert_close(logits, head(x[:, : t + 1]), atol=1e-5, rtol=1e-5)
    assert head.streamable and not NormalizedHead(MeanPoolHead(4, 2), (4,)).streamable


def test_recipe_norm_wraps_every_head_type():
    from harkit.heads import NormalizedHead, unwrap_head
    from harkit.models.builder import build_head
    from harkit.models.recipe import MeanHeadConfig, RecurrentHeadConfig, TwoStreamHeadConfig

    for config in (
        RecurrentHeadConfig(norm="layer", center=True),
        MeanHeadConfig(norm="layer"),
        TwoStreamHeadConfig(norm="layer"),
    ):
        head = build_head(config, [6, 2], 3)
        assert isinstance(head, NormalizedHead) and head.input_dims == [6, 2]
        assert head(torch.randn(2, 4, 8)).shape == (2, 3)
        assert not isinstance(unwrap_head(head), (NormalizedHead, CenteredHead))
    assert not isinstance(build_head(RecurrentHeadConfig(), [8], 3), NormalizedHead)
