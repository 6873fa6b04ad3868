"""End-to-end networks (seed 003) and the per-module parameter table."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harkit.errors import HarkitError
from harkit.heads import TwoStreamHead
from harkit.models.networks import (
    C3DGRU,
    Small2DCNNGRU,
    count_parameters,
    parameter_table,
)


def _counts(model: nn.Module) -> dict[str, tuple[str, int]]:
    return {name: (kind, n) for name, kind, n in parameter_table(model)}


def test_c3d_gru_matches_the_paper_layer_table() -> None:
    model = C3DGRU(num_classes=4, frames=20, size=100)
    rows = _counts(model)
    assert rows["conv1"] == ("Conv3d", 1_312)
    assert rows["conv2"] == ("Conv3d", 13_856)
    assert rows["conv3"] == ("Conv3d", 55_360)
    assert rows["head.encoder.stack.layers.0"] == ("GRU", 3_588_864)
    assert rows["head.classifier"] == ("Linear", 516)
    assert rows["pool1"] == ("MaxPool3d", 0)
    assert model.sequence_shape == (2, 9216)
    total = 1_312 + 13_856 + 55_360 + 3_588_864 + 516
    assert count_parameters(model) == total
    assert sum(n for _, _, n in parameter_table(model)) == total


def test_c3d_gru_forward_on_the_paper_input_size() -> None:
    model = C3DGRU(num_classes=4).eval()
    x = torch.randn(1, 3, 20, 100, 100)
    with torch.no_grad():
        assert model.sequence(x).shape == (1, 2, 9216)
        assert model(x).shape == (1, 4)


@pytest.mark.parametrize(
    ("rnn", "units", "cells"),
    [
        (None, 128, []),
        ("lstm", 32, ["LSTM"]),
        ("gru", 32, ["GRU"]),
        ("lstm", 128, ["LSTM"]),
        (["lstm", "gru"], [32, 32], ["LSTM", "GRU"]),
        (["gru", "lstm"], 128, ["GRU", "LSTM"]),
    ],
)
def test_c3d_variants_build_and_train(rnn, units, cells) -> None:
    torch.manual_seed(0)
    model = C3DGRU(num_classes=3, frames=8, size=16, rnn=rnn, units=units)
    kinds = [k for _, k, _ in parameter_table(model) if k in ("GRU", "LSTM")]
    assert kinds == cells
    x = torch.randn(2, 3, 8, 16, 16)
    logits = model(x)
    assert logits.shape == (2, 3)
    nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    assert model.conv1.weight.grad is not None and model.conv1.weight.grad.abs().sum() > 0
    if rnn is None:  # "3D CNN alone": flatten (1 step x 64*2*2) -> dense
        assert _counts(model)["head"] == ("Linear", 256 * 3 + 3)


def test_c3d_feature_arithmetic_for_64px() -> None:
    model = C3DGRU(num_classes=50, frames=20, size=64)  # the size the paper's text uses
    assert model.sequence_shape == (2, 64 * 8 * 8)
    assert _counts(model)["head.encoder.stack.layers.0"][1] == 3 * (4096 * 128 + 128 * 128 + 256)


def test_c3d_rejects_bad_sizes() -> None:
    with pytest.raises(HarkitError):
        C3DGRU(num_classes=4, frames=6, size=100)
    with pytest.raises(HarkitError):
        C3DGRU(num_classes=4, rnn=["gru", "lstm"], units=[32])
    model = C3DGRU(num_classes=4, frames=8, size=16)
    with pytest.raises(HarkitError):
        model(torch.randn(1, 3, 8, 32, 32))
    with pytest.raises(HarkitError):
        model(torch.randn(1, 3, 4, 16, 16))


def test_small_2d_cnn_gru_per_frame_and_padding() -> None:
    torch.manual_seed(0)
    model = Small2DCNNGRU(num_classes=5, size=20, channels=(4, 8), units=6).eval()
    x = torch.randn(3, 5, 3, 20, 20)
    lengths = torch.tensor([5, 2, 3])
    with torch.no_grad():
        ref = model(x, lengths)
        assert ref.shape == (3, 5)
        garbage = x.clone()
        garbage[1, 2:] = 100.0
        garbage[2, 3:] = -5.0
        torch.testing.assert_close(model(garbage, lengths), ref)
        # The CNN sees each frame on its own (time-distributed).
        seq = model.sequence(x)
        torch.testing.assert_close(seq[1, 3], model.frame_encoder(x[1, 3:4])[0])
    rows = _counts(model)
    assert rows["frame_encoder.0"] == ("Conv2d", 3 * 9 * 4 + 4)
    # flattened 8 x 5 x 5 maps feed the GRU
    assert rows["head.encoder.stack.layers.0"] == ("GRU", 3 * (200 * 6 + 6 * 6 + 2 * 6))
    with pytest.raises(HarkitError):
        model(torch.randn(1, 5, 3, 2, 2))


def test_parameter_table_counts_modules_owning_parameters_directly() -> None:
    head = TwoStreamHead(51)
    rows = parameter_table(head, include_empty=False)
    assert ("fusion", "WeightedAverageFusion", 1) in rows
    assert all(n > 0 for _, _, n in rows)
    assert sum(n for _, _, n in rows) == count_parameters(head) == 2_771_764


def test_count_parameters_trainable_only() -> None:
    model = C3DGRU(num_classes=4, frames=8, size=16)
    for p in model.conv1.parameters():
        p.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == count_parameters(model) - 1_312
