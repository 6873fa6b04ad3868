"""Recipe -> the trainable network.

Every model built here has one signature, ``forward(x, lengths) -> logits``:

* features mode: ``x`` is the cached feature sequence ``(B, T, D)``, the recipe's feature
  sources concatenated along D (heads with two inputs split it again);
* end-to-end mode: ``x`` is the clip ``(B, T, 3, H, W)`` as the clip dataset yields it.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from harkit.backbones import create_backbone, get_backbone_spec
from harkit.heads import (
    CenteredHead,
    DualLayerAttentionHead,
    MeanPoolHead,
    NormalizedHead,
    RecurrentHead,
    TwoStreamHead,
)
from harkit.models.networks import C3DGRU, Small2DCNNGRU
from harkit.models.recipe import FeatureSource, HeadConfig, Recipe

__all__ = [
    "CRNN",
    "ClipC3D",
    "build_head",
    "build_model",
    "feature_dims",
    "pixel_preprocessing",
    "source_dim",
]


def source_dim(source: FeatureSource) -> int:
    """Feature size of one source: the layer's channels, or the pooled feature size."""
    spec = get_backbone_spec(source.backbone)
    if source.layer is None:
        return spec.feature_dim
    if source.layer not in spec.layers:
        from harkit.config import ConfigError

        raise ConfigError(
            f"backbone '{source.backbone}' has no layer '{source.layer}'; "
            f"available: {', '.join(spec.layers)}"
        )
    return spec.layers[source.layer] * source.grid**2


def feature_dims(recipe: Recipe) -> list[int]:
    return [source_dim(s) for s in recipe.input.features]


def build_head(config: HeadConfig, input_dims: Sequence[int], num_classes: int) -> nn.Module:
    """A head for inputs of ``input_dims`` (one per feature source)."""
    if config.type == "mean":
        # Causal centering depends on frame order; the order-agnostic baseline centres on the
        # whole clip instead, and pools the spread around that mean (the mean itself is 0).
        head = MeanPoolHead(sum(input_dims), num_classes, hidden=config.fc or (256,),
                            dropout=config.dropout, statistic="std" if config.center else "mean")
    else:
        head = _build_head(config, input_dims, num_classes)
        head = CenteredHead(head) if config.center else head
    return NormalizedHead(head, input_dims) if config.norm == "layer" else head


def _build_head(config: HeadConfig, input_dims: Sequence[int], num_classes: int) -> nn.Module:
    total = sum(input_dims)
    if config.type == "recurrent":
        return RecurrentHead(
            total,
            num_classes,
            hidden=config.hidden,
            num_layers=config.num_layers,
            cell=config.cell,
            bidirectional=config.bidirectional,
            dropout=config.dropout,
            fc=config.fc,
            pooling=config.pooling,
        )
    if len(input_dims) != 2:
        from harkit.config import ConfigError

        raise ConfigError(
            f"head type '{config.type}' takes exactly two feature sources, got {len(input_dims)}"
        )
    if config.type == "two_stream":
        return TwoStreamHead(
            num_classes,
            input_dims=input_dims,
            hidden=config.hidden,
            num_layers=config.num_layers,
            cell=config.cell,
            dropout=config.dropout,
            fusion=config.fusion,
            pooling="last" if config.pooling == "vote" else config.pooling,
        )
    return DualLayerAttentionHead(
        input_dims,
        num_classes,
        hidden=config.hidden,
        num_layers=config.num_layers,
        cell=config.cell,
        bidirectional=config.bidirectional,
        dropout=config.dropout,
        fc=config.fc,
    )


class ClipC3D(nn.Module):
    """Seed 003's C3DGRU fed with ``(B, T, 3, H, W)`` clips like every other model."""

    def __init__(self, network: C3DGRU) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.network(x.transpose(1, 2))


class CRNN(nn.Module):
    """Seed 002: frame backbone -> FC embedding chain -> recurrent head, trained end to end."""

    def __init__(
        self,
        encoder: nn.Module,
        feature_dim: int,
        embed: Sequence[int],
        head: nn.Module,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        layers: list[nn.Module] = []
        prev = feature_dim
        for size in embed:
            layers += [nn.Linear(prev, size), nn.ReLU(), nn.Dropout(dropout)]
            prev = size
        self.embed = nn.Sequential(*layers)
        self.head = head

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        b, t = x.shape[:2]
        frames = self.encoder(x.flatten(0, 1))
        return self.head(self.embed(frames).view(b, t, -1), lengths)


def build_model(recipe: Recipe, num_classes: int) -> nn.Module:
    """The trainable network of ``recipe`` for ``num_classes`` actions."""
    if recipe.mode == "features":
        assert recipe.head is not None
        return build_head(recipe.head, feature_dims(recipe), num_classes)
    net = recipe.network
    assert net is not None
    cells = {"none": None, "lstm_gru": ["lstm", "gru"]}.get(net.rnn, net.rnn)
    frames = recipe.input.sampling.num_frames
    if net.type == "c3d_gru":
        units = [net.units, net.units] if net.rnn == "lstm_gru" else net.units
        return ClipC3D(
            C3DGRU(
                num_classes,
                frames=frames,
                size=net.size,
                dropout=net.dropout,
                rnn=cells,
                units=units,
            )
        )
    if net.type == "small2d_gru":
        if cells is None:
            cells = "gru"
        return Small2DCNNGRU(num_classes, net.size, rnn=cells, units=net.units,
                             dropout=net.dropout)
    assert recipe.head is not None
    encoder = create_backbone(net.encoder, net.encoder_weights, frozen=not net.fine_tune)
    feature_dim = get_backbone_spec(net.encoder).feature_dim
    head = build_head(recipe.head, [net.embed[-1] if net.embed else feature_dim], num_classes)
    return CRNN(encoder, feature_dim, net.embed, head, net.dropout)


def pixel_preprocessing(recipe: Recipe) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """``(input_size, mean, std)`` of an end-to-end recipe's clips."""
    net = recipe.network
    if net is None:
        raise ValueError(f"recipe '{recipe.name}' trains on cached features, not on pixels")
    if net.type == "crnn":
        spec = get_backbone_spec(net.encoder)
        return spec.input_size, tuple(spec.mean), tuple(spec.std)
    # From-scratch networks: inputs scaled to [-1, 1].
    return net.size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
