"""Recipe -> the trainable network.

Every model built here has one signature, ``forward(x, lengths) -> logits``:

* features mode: ``x`` is the cached feature sequence ``(B, T, D)``, the recipe's feature
  sources concatenated along D (heads with two inputs split it again);
* end-to-end mode: ``x`` is the clip ``(B, T, 3, H, W)`` as the clip dataset yields it.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from harkit.backbones import Preprocessing, get_backbone_spec
from harkit.heads import NormalizedHead
from harkit.models.networks import C3DGRU
from harkit.models.recipe import FeatureSource, Recipe
from harkit.models.registry import HeadConfigBase, get_head_spec, get_network_spec

__all__ = [
    "CRNN",
    "ClipC3D",
    "build_head",
    "build_model",
    "feature_dims",
    "pixel_input",
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


def build_head(config: HeadConfigBase, input_dims: Sequence[int], num_classes: int) -> nn.Module:
    """The head ``config.type`` names (see :func:`harkit.register_head`) for inputs of
    ``input_dims`` (one per feature source), layer-normalised per source when ``norm: layer``."""
    from harkit.config import ConfigError

    spec = get_head_spec(config.type)
    if spec.inputs is not None and len(input_dims) != spec.inputs:
        raise ConfigError(
            f"head type '{config.type}' takes exactly {spec.inputs} feature sources, "
            f"got {len(input_dims)}"
        )
    head = spec.builder(config, list(input_dims), num_classes)
    return NormalizedHead(head, input_dims) if config.norm == "layer" else head


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
    assert recipe.network is not None
    return get_network_spec(recipe.network.type).builder(recipe.network, recipe, num_classes)


def pixel_input(recipe: Recipe) -> Preprocessing:
    """How an end-to-end recipe's clips are made (size, mean/std, resize, interpolation): its
    network's registered preprocessing, e.g. the encoder's weights entry for ``crnn``
    (``spec.preprocessing_for(encoder_weights)``); an ``(input_size, mean, std)`` tuple
    stands for `Preprocessing` with the default resize and interpolation."""
    net = recipe.network
    if net is None:
        raise ValueError(f"recipe '{recipe.name}' trains on cached features, not on pixels")
    value = get_network_spec(net.type).preprocessing(net)
    return value if isinstance(value, Preprocessing) else Preprocessing(*value)


def pixel_preprocessing(recipe: Recipe) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """``(input_size, mean, std)`` of an end-to-end recipe's clips (see `pixel_input`)."""
    prep = pixel_input(recipe)
    return prep.input_size, prep.mean, prep.std
