"""`Backbone`: a built network plus its spec, frozen by default, optionally multi-layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harkit.backbones.errors import BackboneError
from harkit.backbones.inflate import TIME_PADDED_MODULES
from harkit.backbones.spec import BackboneSpec, Preprocessing

__all__ = ["Backbone", "grid_pool"]


def _global_pool(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).mean(dim=2) if x.ndim > 2 else x


def _cell_weights(size: int, cells: int, like: torch.Tensor) -> torch.Tensor:
    """``(size, cells)`` averaging weights of adaptive average pooling along one axis."""
    # built from Python numbers: a constant in an exported graph (in-place slice writes on a
    # tensor made inside forward were exported wrong)
    rows = [[0.0] * cells for _ in range(size)]
    for c in range(cells):
        start, end = (c * size) // cells, -((-(c + 1) * size) // cells)
        for r in range(start, end):
            rows[r][c] = 1.0 / (end - start)
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def grid_pool(x: torch.Tensor, grid: int) -> torch.Tensor:
    """A map ``(B, C, H, W)`` averaged over ``grid x grid`` cells -> ``(B, C * grid * grid)``,
    channel-major. The same numbers as ``adaptive_avg_pool2d``, written as two matrix products
    because ONNX cannot export adaptive pooling to a size that does not divide the map's."""
    if x.ndim != 4:
        raise BackboneError(f"grid features need a 2D map (B, C, H, W), got {tuple(x.shape)}")
    rows = _cell_weights(x.shape[2], grid, x)
    cols = _cell_weights(x.shape[3], grid, x)
    return torch.einsum("bchw,hi,wj->bcij", x, rows, cols).flatten(1)


class Backbone(nn.Module):
    """Maps a preprocessed batch to pooled features ``(B, feature_dim)``.

    With ``layers`` it returns ``{'pooled': (B, D), layer: (B, C_layer), ...}``, each
    intermediate map globally average pooled, or with ``grid > 1`` averaged over a
    ``grid x grid`` layout of cells (``(B, C_layer * grid * grid)``: where things are). A
    frozen backbone has ``requires_grad=False`` and stays in eval mode even when a parent
    module calls ``.train()``, so batch-norm statistics never drift during head training. Segment clips shorter than
    ``spec.min_frames`` are padded by repeating their last frame. ``preprocessing`` is what
    its input is made with: the weights entry's (default: ``spec.preprocessing``, random init's).
    """

    def __init__(
        self,
        net: nn.Module,
        spec: BackboneSpec,
        *,
        weights: str = "none",
        frozen: bool = True,
        layers: Sequence[str] | None = None,
        grid: int = 1,
        preprocessing: Preprocessing | None = None,
    ) -> None:
        super().__init__()
        if grid < 1 or (grid > 1 and not layers):
            raise BackboneError(
                f"backbone {spec.name!r}: grid {grid} needs grid >= 1, and a layer's map to "
                f"pool (available layers: {', '.join(spec.layers) or '(none)'})"
            )
        self.spec = spec
        self.weights = weights
        self.preprocessing = preprocessing or spec.preprocessing
        self.frozen = frozen
        self.grid = grid
        self.layers: tuple[str, ...] = tuple(layers or ())
        self.net = net if not self.layers else _multi_layer(net, spec, self.layers)
        if frozen:  # a trainable encoder keeps nn.Module's train mode: its batch norm learns
            self.net.requires_grad_(False)
            self.eval()

    @property
    def feature_dim(self) -> int:
        return self.spec.feature_dim

    @property
    def output_dims(self) -> dict[str, int]:
        """Feature size of every output: ``{'pooled': D}`` plus one entry per layer."""
        cells = self.grid * self.grid
        layers = {k: self.spec.layers[k] * cells for k in self.layers}
        return {"pooled": self.spec.feature_dim, **layers}

    def train(self, mode: bool = True) -> Backbone:
        super().train(False if self.frozen else mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        short = self.spec.min_frames - (x.shape[2] if x.ndim == 5 else self.spec.min_frames)
        if short > 0:  # e.g. the last, shorter segment of a video: repeat its last frame
            x = torch.cat([x, x[:, :, -1:].expand(-1, -1, short, -1, -1)], dim=2)
        if self.net.training != self.training:  # fx GraphModule deep copies come back training
            self.train(self.training)
        out = self.net(x)
        if not self.layers:
            return out
        return {
            key: grid_pool(value, self.grid)
            if self.grid > 1 and key != "pooled"
            else _global_pool(value)
            for key, value in out.items()
        }

    def with_layers(self, layers: Sequence[str], grid: int = 1) -> Backbone:
        """A multi-layer view of this backbone sharing its parameters (layer maps pooled to
        ``grid x grid`` cells)."""
        if self.layers:
            raise BackboneError("this backbone already returns multi-layer features")
        return Backbone(
            self.net,
            self.spec,
            weights=self.weights,
            frozen=self.frozen,
            layers=layers,
            grid=grid,
            preprocessing=self.preprocessing,
        )

    def extra_repr(self) -> str:
        return f"name={self.spec.name!r}, weights={self.weights!r}, frozen={self.frozen}"


def _multi_layer(net: nn.Module, spec: BackboneSpec, layers: Sequence[str]) -> nn.Module:
    from torchvision.models.feature_extraction import (
        create_feature_extractor,
        get_graph_node_names,
    )

    unknown = [name for name in layers if name not in spec.layers]
    if unknown or len(set(layers)) != len(layers) or "pooled" in layers:
        raise BackboneError(
            f"backbone {spec.name!r}: bad layers {list(layers)}; available layers: "
            f"{', '.join(spec.layers) or '(none)'}"
        )
    tracer_kwargs = {"leaf_modules": _leaf_types(net, layers)}
    was_training = net.training
    net.eval()
    eval_nodes = get_graph_node_names(net, tracer_kwargs=tracer_kwargs)[1]
    return_nodes = {name: name for name in layers}
    return_nodes[eval_nodes[-1]] = "pooled"  # the node feeding the output: pooled features
    extractor = create_feature_extractor(
        net,
        eval_return_nodes=return_nodes,
        train_return_nodes=return_nodes,
        tracer_kwargs=tracer_kwargs,
        suppress_diff_warning=True,
    )
    net.train(was_training)
    return extractor


def _leaf_types(net: nn.Module, layers: Sequence[str]) -> list[type[nn.Module]]:
    """Module types torch.fx may treat as opaque: all but the requested layers' ancestors.

    Tracing only what is needed keeps the graph small (tracing every timm BatchNormAct2d takes
    tens of seconds), and the time-padded 3D modules cannot be traced at all.
    """
    keep: set[type[nn.Module]] = {type(net)}
    for layer in layers:
        parts = layer.split(".")
        for i in range(1, len(parts)):
            keep.add(type(net.get_submodule(".".join(parts[:i]))))
    # The tracer checks isinstance, so a base class of a kept type must not become a leaf.
    leaves = {t for t in map(type, net.modules()) if not any(issubclass(k, t) for k in keep)}
    return sorted(leaves | set(TIME_PADDED_MODULES), key=lambda t: t.__qualname__)
