"""The built-in heads and end-to-end networks: their recipe configs and builders, registered
by name through :mod:`harkit.models.registry` as a user's head would be.

Each config takes only its own keys. Builders import torch when called, so loading a recipe
stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from harkit.models.fields import Dropout, Hidden, Layers, Sizes, Units
from harkit.models.registry import (
    HeadConfigBase,
    NetworkConfigBase,
    register_head,
    register_network,
)

if TYPE_CHECKING:
    from torch import nn

    from harkit.backbones import Preprocessing
    from harkit.models.recipe import Recipe

__all__ = [
    "C3DGRUConfig",
    "CRNNConfig",
    "DualLayerAttentionHeadConfig",
    "MeanHeadConfig",
    "RecurrentHeadConfig",
    "Small2DGRUConfig",
    "TwoStreamHeadConfig",
]

Cell = Literal["gru", "lstm"]


# --- heads ----------------------------------------------------------------------------------


class RecurrentHeadConfig(HeadConfigBase):
    """``type: recurrent``: stacked GRU/LSTM -> temporal pooling -> FC -> logits (seeds 000,
    002, 003); the features of every source are concatenated along D."""

    type: Literal["recurrent"] = "recurrent"
    cell: Cell = "gru"
    hidden: Hidden = 256
    num_layers: Layers = 1
    bidirectional: bool = False
    dropout: Dropout = 0.0
    fc: Sizes = Field(default_factory=list)
    pooling: Literal["last", "mean", "attention", "vote"] = "last"
    """``vote``: every step is classified (and trained on the clip's label), the most frequent
    label wins (seed 002)."""
    center: bool = False
    """Subtract each step's running mean first (causal, so the head still streams)."""


class MeanHeadConfig(HeadConfigBase):
    """``type: mean``: the order-agnostic baseline, a masked statistic over time -> MLP."""

    type: Literal["mean"] = "mean"
    fc: Sizes = Field(default_factory=lambda: [256])
    """ReLU FC layers before the classifier (``[]``: a linear classifier on the statistic)."""
    dropout: Dropout = 0.0
    center: bool = False
    """Pool the spread of the steps around the clip's mean instead of the mean (the
    order-free counterpart of causal centering: the mean of centred steps is 0)."""


class TwoStreamHeadConfig(HeadConfigBase):
    """``type: two_stream``: two feature sources -> one recurrent encoder each -> weighted
    average of their outputs -> dense -> logits (seed 001)."""

    type: Literal["two_stream"] = "two_stream"
    cell: Cell = "gru"
    hidden: Hidden = 256
    num_layers: Layers = 1
    dropout: Dropout = 0.0
    pooling: Literal["last", "mean", "attention"] = "last"
    """Per stream, before the fusion (the fused vector is classified once: no ``vote``)."""
    fusion: Literal["learned", "average"] = "learned"
    """Learned ``alpha*A + (1-alpha)*B`` or the plain average."""
    center: bool = False


class DualLayerAttentionHeadConfig(HeadConfigBase):
    """``type: dual_layer_attention``: features of two CNN layers -> one recurrent stack
    each -> concatenated per step -> temporal attention -> FC -> logits (seed 004)."""

    type: Literal["dual_layer_attention"] = "dual_layer_attention"
    cell: Cell = "gru"
    hidden: Hidden = 256
    """One size for both stacks, or two: one per input layer."""
    num_layers: Layers = 1
    bidirectional: bool = False
    dropout: Dropout = 0.0
    fc: Sizes = Field(default_factory=list)
    center: bool = False

    @field_validator("hidden")
    @classmethod
    def _one_per_input(cls, value: int | list[int]) -> int | list[int]:
        if isinstance(value, list) and len(value) != 2:
            raise PydanticCustomError(
                "hidden_sizes", "expected one size, or two: one per input layer"
            )
        return value


def _centered(head: nn.Module, center: bool) -> nn.Module:
    from harkit.heads import CenteredHead

    return CenteredHead(head) if center else head


@register_head("recurrent", config=RecurrentHeadConfig)
def build_recurrent(
    config: RecurrentHeadConfig, input_dims: Sequence[int], num_classes: int
) -> nn.Module:
    from harkit.heads import RecurrentHead

    head = RecurrentHead(
        sum(input_dims),
        num_classes,
        hidden=config.hidden,
        num_layers=config.num_layers,
        cell=config.cell,
        bidirectional=config.bidirectional,
        dropout=config.dropout,
        fc=config.fc,
        pooling=config.pooling,
    )
    return _centered(head, config.center)


@register_head("mean", config=MeanHeadConfig)
def build_mean(config: MeanHeadConfig, input_dims: Sequence[int], num_classes: int) -> nn.Module:
    from harkit.heads import MeanPoolHead

    # Causal centering depends on frame order; the order-agnostic baseline centres on the
    # whole clip instead, and pools the spread around that mean (the mean itself is 0).
    return MeanPoolHead(
        sum(input_dims),
        num_classes,
        hidden=config.fc,
        dropout=config.dropout,
        statistic="std" if config.center else "mean",
    )


@register_head("two_stream", config=TwoStreamHeadConfig, inputs=2)
def build_two_stream(
    config: TwoStreamHeadConfig, input_dims: Sequence[int], num_classes: int
) -> nn.Module:
    from harkit.heads import TwoStreamHead

    head = TwoStreamHead(
        num_classes,
        input_dims=input_dims,
        hidden=config.hidden,
        num_layers=config.num_layers,
        cell=config.cell,
        dropout=config.dropout,
        fusion=config.fusion,
        pooling=config.pooling,
    )
    return _centered(head, config.center)


@register_head("dual_layer_attention", config=DualLayerAttentionHeadConfig, inputs=2)
def build_dual_layer_attention(
    config: DualLayerAttentionHeadConfig, input_dims: Sequence[int], num_classes: int
) -> nn.Module:
    from harkit.heads import DualLayerAttentionHead

    head = DualLayerAttentionHead(
        input_dims,
        num_classes,
        hidden=config.hidden,
        num_layers=config.num_layers,
        cell=config.cell,
        bidirectional=config.bidirectional,
        dropout=config.dropout,
        fc=config.fc,
    )
    return _centered(head, config.center)


# --- end-to-end networks --------------------------------------------------------------------


class _NoPretrainedEncoder:
    @property
    def encoder_weights(self) -> str:
        """``none``: trained from scratch, there is no pretrained encoder to load (read by
        code that drops pretrained weights from any network, as for ``crnn``)."""
        return "none"


class C3DGRUConfig(NetworkConfigBase, _NoPretrainedEncoder):
    """``type: c3d_gru``: seed 003's 3D CNN + recurrent layer, trained from scratch."""

    type: Literal["c3d_gru"] = "c3d_gru"
    rnn: Literal["gru", "lstm", "none", "lstm_gru"] = "gru"
    """Recurrent layer after the CNN (``none``: the 3D CNN alone, dense over the flat clip;
    ``lstm_gru``: LSTM then GRU, ``units`` each)."""
    units: Units = 128
    size: int = Field(default=100, ge=8, le=1024)
    """Square input size (seed 003's layer table: 100)."""
    dropout: Dropout = 0.0


class Small2DGRUConfig(NetworkConfigBase, _NoPretrainedEncoder):
    """``type: small2d_gru``: seed 003's 2D baseline, a small CNN per frame -> recurrent
    layer, trained from scratch."""

    type: Literal["small2d_gru"] = "small2d_gru"
    rnn: Literal["gru", "lstm", "lstm_gru"] = "gru"
    """Recurrent layer after the per-frame CNN (it has no CNN-alone variant)."""
    units: Units = 128
    size: int = Field(default=100, ge=8, le=1024)
    """Square input size."""
    dropout: Dropout = 0.0


class CRNNConfig(NetworkConfigBase):
    """``type: crnn``: seed 002's frame backbone -> FC embedding -> the recipe's ``head``,
    trained end to end."""

    type: Literal["crnn"] = "crnn"
    encoder: str = "resnet152"
    """Frame backbone of the encoder."""
    encoder_weights: str = "imagenet"
    fine_tune: bool = True
    """Train the encoder backbone too (False keeps it frozen)."""
    embed: Sizes = Field(default_factory=lambda: [1024, 768, 512])
    """FC sizes from the backbone feature to the embedding (seed 002)."""
    dropout: Dropout = 0.0


def _rnn_cells(rnn: str) -> str | list[str] | None:
    return {"none": None, "lstm_gru": ["lstm", "gru"]}.get(rnn, rnn)


@register_network("c3d_gru", config=C3DGRUConfig)
def build_c3d_gru(config: C3DGRUConfig, recipe: Recipe, num_classes: int) -> nn.Module:
    from harkit.models.builder import ClipC3D
    from harkit.models.networks import C3DGRU

    units = [config.units, config.units] if config.rnn == "lstm_gru" else config.units
    network = C3DGRU(
        num_classes,
        frames=recipe.input.sampling.num_frames,
        size=config.size,
        dropout=config.dropout,
        rnn=_rnn_cells(config.rnn),
        units=units,
    )
    return ClipC3D(network)


@register_network("small2d_gru", config=Small2DGRUConfig)
def build_small2d_gru(config: Small2DGRUConfig, recipe: Recipe, num_classes: int) -> nn.Module:
    from harkit.models.networks import Small2DCNNGRU

    cells = _rnn_cells(config.rnn)
    assert cells is not None  # the config has no 'none'
    return Small2DCNNGRU(
        num_classes, config.size, rnn=cells, units=config.units, dropout=config.dropout
    )


def _encoder_preprocessing(config: CRNNConfig) -> Preprocessing:
    """The encoder's weights entry's `harkit.backbones.Preprocessing` (resize and
    interpolation included; `harkit.models.builder.pixel_input` takes it as it is)."""
    from harkit.backbones import get_backbone_spec

    return get_backbone_spec(config.encoder).preprocessing_for(config.encoder_weights)


@register_network("crnn", config=CRNNConfig, takes_head=True, preprocessing=_encoder_preprocessing)
def build_crnn(config: CRNNConfig, recipe: Recipe, num_classes: int) -> nn.Module:
    from harkit.backbones import create_backbone, get_backbone_spec
    from harkit.models.builder import CRNN, build_head

    assert recipe.head is not None  # the recipe checks it
    encoder = create_backbone(config.encoder, config.encoder_weights, frozen=not config.fine_tune)
    feature_dim = get_backbone_spec(config.encoder).feature_dim
    head = build_head(recipe.head, [config.embed[-1] if config.embed else feature_dim], num_classes)
    return CRNN(encoder, feature_dim, config.embed, head, config.dropout)
