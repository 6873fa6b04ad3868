"""Heads and networks by name: each ``type`` takes its own keys only, nothing a recipe says is
rewritten when the model is built, and a user's head works from a recipe like a built-in one."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from pydantic import Field
from torch import Tensor, nn

import harkit
from harkit.config import ConfigError
from harkit.models.builder import build_model, feature_dims
from harkit.models.recipe import load_recipe


def _refused(recipe: str | Path, overrides: list[str], *fragments: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_recipe(recipe, overrides)
    message = str(err.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- no silent rewrites ------------------------------------------------------------------------


def test_a_two_stream_head_refuses_vote_pooling(tmp_path: Path) -> None:
    # The builder used to turn it into 'last' without a word.
    allowed = "'last', 'mean' or 'attention'"
    _refused(
        "i3d-gru-twostream",
        ["head.pooling=vote"],
        "'head.pooling'",
        "'vote'",
        allowed,
        "two_stream",
    )
    variant = _write(tmp_path / "vote.yaml", "base: i3d-gru-twostream\nhead: {pooling: vote}\n")
    _refused(variant, [], "'head.pooling'", "'vote'", allowed)
    # a recurrent head that votes, switched to two streams, keeps its pooling: refused too
    _refused(
        "fusion-gru",
        ["head.pooling=vote", "head.type=two_stream"],
        "'head.pooling'",
        "'vote'",
        allowed,
    )


def test_small2d_gru_refuses_rnn_none(tmp_path: Path) -> None:
    # The builder used to turn it into 'gru' without a word.
    allowed = "'gru', 'lstm' or 'lstm_gru'"
    _refused(
        "ablations/cnn2d-gru",
        ["network.rnn=none"],
        "'network.rnn'",
        "'none'",
        allowed,
        "small2d_gru",
    )
    # c3d-only's 'rnn: none' is inherited by a 2D variant of it: the key carries, and is refused
    variant = _write(
        tmp_path / "2d-only.yaml", "base: ablations/c3d-only\nnetwork: {type: small2d_gru}\n"
    )
    _refused(variant, [], "'network.rnn'", "'none'", allowed)
    assert load_recipe("ablations/c3d-only").network.rnn == "none"  # type: ignore[union-attr]


def test_a_mean_head_builds_the_fc_layers_it_is_given() -> None:
    # 'fc: []' used to become [256]; [] is a linear classifier on the pooled statistic.
    from harkit.heads import MeanPoolHead
    from harkit.models.builder import build_head
    from harkit.models.registry import parse_head_config

    head = build_head(parse_head_config({"type": "mean", "fc": []}), [6], 3)
    assert isinstance(head, MeanPoolHead) and len(head.mlp) == 0
    assert head.classifier.in_features == 6
    default = build_head(parse_head_config({"type": "mean"}), [6], 3)
    assert isinstance(default, MeanPoolHead) and default.mlp[0].out_features == 256


def test_built_models_use_what_the_recipe_says() -> None:
    from harkit.heads import TwoStreamHead, unwrap_head

    recipe = load_recipe("i3d-gru-twostream", ["head.pooling=mean", "head.fusion=average"])
    head = unwrap_head(build_model(recipe, 5))
    assert isinstance(head, TwoStreamHead) and head.fusion.mode == "average"
    assert all(stream.pooling == "mean" for stream in head.streams)
    net = build_model(load_recipe("ablations/cnn2d-lstm-gru", ["network.size=16"]), 3)
    assert net.head.encoder.stack.cells == ["lstm", "gru"]


# --- each type takes its own keys --------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipe", "override", "owner"),
    [
        ("fusion-gru", "head.fusion=average", "head type 'recurrent'"),
        ("i3d-gru-twostream", "head.bidirectional=true", "head type 'two_stream'"),
        ("i3d-gru-twostream", "head.fc=[8]", "head type 'two_stream'"),
        ("attn-lstm", "head.pooling=last", "head type 'dual_layer_attention'"),
        ("ablations/efficientnet-gru-mean", "head.hidden=8", "head type 'mean'"),
        ("c3d-gru", "network.encoder=resnet18", "network type 'c3d_gru'"),
        ("corehar", "network.units=8", "network type 'crnn'"),
    ],
)
def test_a_key_of_another_type_is_refused(recipe: str, override: str, owner: str) -> None:
    key = override.partition("=")[0]
    _refused(recipe, [override], f"key '{key}': unknown key for {owner}", "(its keys: type")


def test_unknown_types_name_the_registered_ones() -> None:
    message = _refused(
        "fusion-gru",
        ["head.type=transformer"],
        "key 'head.type'",
        "'transformer'",
        "a registered head type",
    )
    for name in harkit.list_heads():
        assert repr(name) in message
    _refused(
        "c3d-gru",
        ["network.type=vit"],
        "key 'network.type'",
        "'c3d_gru', 'crnn' or 'small2d_gru'",
        "'vit'",
    )
    _refused("c3d-gru", ["network={units: 8}"], "key 'network.type': required key is missing")


def test_a_head_without_type_is_recurrent() -> None:
    from harkit.models.recipe import RecurrentHeadConfig

    head = load_recipe("fusion-gru", ["head={hidden: 8}"]).head
    assert isinstance(head, RecurrentHeadConfig) and head.hidden == 8


def test_dual_layer_attention_takes_one_size_or_one_per_input() -> None:
    assert load_recipe("attn-lstm", ["head.hidden=[32,64]"]).head.hidden == [32, 64]  # type: ignore[union-attr]
    _refused("attn-lstm", ["head.hidden=[8,8,8]"], "'head.hidden'", "one per input layer")


def test_heads_with_two_inputs_are_checked_when_the_recipe_loads() -> None:
    _refused(
        "synthetic-gru",
        ["head.type=two_stream"],
        "head type 'two_stream' takes exactly 2 feature sources, got 1",
    )
    _refused(
        "corehar",
        ["head.type=dual_layer_attention"],
        "head type 'dual_layer_attention' takes exactly 2 feature sources",
    )
    _refused("c3d-gru", ["head={type: recurrent}"], "an end-to-end 'c3d_gru' takes no head")


# --- a type change leaves inherited keys behind, not the ones it sets --------------------------


def test_changing_type_keeps_the_inherited_keys_the_new_type_takes() -> None:
    from harkit.models.recipe import MeanHeadConfig, RecurrentHeadConfig

    # synthetic-gru: GRU 128, dropout 0.2, center: the mean head keeps dropout and center
    head = load_recipe("synthetic-gru", ["head.type=mean"]).head
    assert head == MeanHeadConfig(dropout=0.2, center=True)
    assert load_recipe("synthetic-gru", ["head={type: mean}"]).head == MeanHeadConfig()
    # the single-stream ablations of seed 001: the streams' 2 x GRU 256, no fusion
    for name in ("ablations/i3d-gru-rgb", "ablations/i3d-gru-flow"):
        rgb = load_recipe(name).head
        assert rgb == RecurrentHeadConfig(cell="gru", hidden=256, num_layers=2)
    motion = load_recipe("ablations/efficientnet-motion-gru-mean").head
    assert motion == MeanHeadConfig(dropout=0.2, norm="layer")
    net = load_recipe("ablations/cnn2d-gru").network
    assert (net.type, net.units, net.size, net.dropout) == ("small2d_gru", 32, 100, 0.25)  # type: ignore[union-attr]


def test_keys_set_with_the_new_type_are_validated(tmp_path: Path) -> None:
    for overrides in (["head.type=mean", "head.hidden=8"], ["head.hidden=8", "head.type=mean"]):
        _refused("synthetic-gru", overrides, "key 'head.hidden': unknown key for head type 'mean'")
    variant = _write(tmp_path / "m.yaml", "base: synthetic-gru\nhead: {type: mean, hidden: 8}\n")
    _refused(variant, [], "key 'head.hidden': unknown key for head type 'mean'")


# --- the registry --------------------------------------------------------------------------


def test_registering_twice_or_wrongly_is_refused() -> None:
    from typing import Literal

    from harkit.models.registry import RegistryError

    def build(config, input_dims, num_classes):  # pragma: no cover - never built
        raise AssertionError

    with pytest.raises(RegistryError, match="head type 'recurrent' is already registered"):
        harkit.register_head("recurrent", build)
    with pytest.raises(RegistryError, match="must be a word"):
        harkit.register_head("my head", build)
    with pytest.raises(RegistryError, match="must subclass HeadConfigBase"):
        harkit.register_head("plain_dict", build, config=dict)  # type: ignore[arg-type]

    class Other(harkit.HeadConfigBase):
        type: Literal["other"] = "other"

    with pytest.raises(RegistryError, match=r"Other\.type must be Literal\['mismatch'\]"):
        harkit.register_head("mismatch", build, config=Other)
    assert "mismatch" not in harkit.list_heads() and "my head" not in harkit.list_heads()


def test_built_in_heads_are_registered_like_any_other() -> None:
    from harkit.models.registry import get_head_spec, get_network_spec, list_networks

    assert {"recurrent", "mean", "two_stream", "dual_layer_attention"} <= set(harkit.list_heads())
    assert get_head_spec("two_stream").inputs == 2 and get_head_spec("recurrent").inputs is None
    assert set(list_networks()) >= {"c3d_gru", "crnn", "small2d_gru"}
    assert get_network_spec("crnn").takes_head and not get_network_spec("c3d_gru").takes_head


def test_networks_trained_from_scratch_have_no_encoder_weights() -> None:
    # training's memory check and offline copies read network.encoder_weights of any network
    from harkit.train.memory import check_model_fits
    from harkit.train.run import offline_recipe

    recipe = load_recipe("c3d-gru", ["network.size=16", "input.sampling.num_frames=8"])
    assert recipe.network.encoder_weights == "none"  # type: ignore[union-attr]
    offline = offline_recipe(recipe)
    assert offline.network.model_dump() == recipe.network.model_dump()  # type: ignore[union-attr]
    check_model_fits(recipe)
    assert offline_recipe(load_recipe("corehar")).network.encoder_weights == "none"  # type: ignore[union-attr]


# --- a user's head, from a recipe to a trained run -----------------------------------------


class TinyHeadConfig(harkit.HeadConfigBase):
    width: int = Field(default=4, ge=1, le=64)


class TinyHead(nn.Module):
    """Mean of the valid steps -> ReLU layer of ``width`` -> logits."""

    def __init__(self, input_dim: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(input_dim, width)
        self.out = nn.Linear(width, num_classes)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        from harkit.heads import check_lengths, masked_mean

        pooled = masked_mean(x, check_lengths(x, lengths))
        return self.out(torch.relu(self.hidden(pooled)))


TINY = "tiny_test_head"


def build_tiny(config: TinyHeadConfig, input_dims: list[int], num_classes: int) -> nn.Module:
    assert isinstance(config, TinyHeadConfig)
    return TinyHead(sum(input_dims), config.width, num_classes)


@pytest.fixture
def tiny_head():
    from harkit.models.registry import _unregister_head

    assert harkit.register_head(TINY, config=TinyHeadConfig)(build_tiny) is build_tiny
    try:
        yield TINY
    finally:
        _unregister_head(TINY)


def _tiny_recipe(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "tiny.yaml",
        (
            "name: tiny-head\nmode: features\n"
            "input:\n  sampling: {strategy: uniform, num_frames: 8}\n"
            "  features: [{backbone: resnet18, weights: none, layer: layer1}]\n"
            f"head: {{type: {TINY}, width: 8, norm: layer}}\n"
            "optim: {epochs: 1, batch_size: 8, val_fraction: 0, lr: 0.01}\n"
        ),
    )


def test_a_registered_head_trains_from_a_recipe(tiny_head: str, tmp_path: Path) -> None:
    from harkit.heads import NormalizedHead
    from harkit.train import load_run, train
    from tests.helpers.training import toy_data

    path = _tiny_recipe(tmp_path)
    recipe = load_recipe(path)
    assert recipe.head is not None and recipe.head.type == TINY and recipe.head.width == 8
    assert isinstance(recipe.head, TinyHeadConfig) and TINY in harkit.list_heads()
    assert pickle.loads(pickle.dumps(recipe)) == recipe  # DataLoader workers, spawn

    model = build_model(recipe, num_classes=2)
    assert isinstance(model, NormalizedHead) and isinstance(model.head, TinyHead)
    dim = sum(feature_dims(recipe))
    x, lengths = torch.randn(3, 5, dim), torch.tensor([5, 3, 1])
    assert model(x, lengths).shape == (3, 2)

    data = toy_data(dim, n_train=8, n_val=0, n_test=4)
    info = train(recipe, data, tmp_path / "run", progress=False).info
    assert info.epochs_run == 1
    saved, _, trained = load_run(tmp_path / "run")  # recipe.yaml names the head: it validates
    assert saved.head == recipe.head
    assert isinstance(trained, NormalizedHead) and isinstance(trained.head, TinyHead)
    assert trained(x, lengths).shape == (3, 2)

    # its own keys only, with their bounds, in the same one-line errors
    _refused(
        path,
        ["head.depth=2"],
        f"key 'head.depth': unknown key for head type '{TINY}'",
        "(its keys: type, norm, width)",
    )
    _refused(path, ["head.width=0"], "key 'head.width'", "got 0")
    # the public create_model builds it too
    assert harkit.create_model(path, num_classes=3)(x, lengths).shape == (3, 3)


def test_an_unregistered_head_is_an_unknown_type(tmp_path: Path) -> None:
    path = _tiny_recipe(tmp_path)
    _refused(path, [], "key 'head.type'", f"got '{TINY}'", "a registered head type")


def test_a_head_registered_with_its_number_of_inputs(tmp_path: Path) -> None:
    from harkit.models.registry import _unregister_head

    harkit.register_head("tiny_pair_head", build_tiny, config=TinyHeadConfig, inputs=2)
    try:
        _refused(
            _tiny_recipe(tmp_path),
            ["head.type=tiny_pair_head"],
            "head type 'tiny_pair_head' takes exactly 2 feature sources, got 1",
        )
    finally:
        _unregister_head("tiny_pair_head")


@pytest.mark.slow
def test_readme_register_head_example_runs_as_written(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.readme import readme_block

    code = readme_block("# harkit-readme-register-head", "python")
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("MeanLinear [") and "'mean_linear'" in done.stdout
