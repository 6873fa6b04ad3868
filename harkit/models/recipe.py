"""Recipes: one validated YAML file builds a model, its data and its optimiser.

A recipe file may start with ``base: <recipe name or path>``; it is then deep-merged over
that base, so an ablation is a few lines (``recipes/ablations/*.yaml``). Command-line
overrides (``head.hidden=512``) go on top of both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, TypeAdapter, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from harkit.config import (
    ConfigError,
    StrictModel,
    apply_overrides,
    load_yaml,
    parse_config,
)
from harkit.data.datasets import DatasetConfig
from harkit.data.sampling import SamplingConfig
from harkit.data.transforms import TransformConfig

__all__ = [
    "MAX_UNITS",
    "FeatureSource",
    "HeadConfig",
    "InputConfig",
    "NetworkConfig",
    "OptimConfig",
    "Recipe",
    "list_recipes",
    "load_recipe",
    "recipe_dir",
]


# Ceilings on sizes and loop lengths: a value past them is a typo (head.hidden=1e11), and is
# refused when the recipe loads, before anything is allocated or trained.
MAX_UNITS = 65536
Units = Annotated[int, Field(ge=1, le=MAX_UNITS)]
Layers = Annotated[int, Field(ge=1, le=16)]
Sizes = Annotated[list[Units], Field(max_length=16)]
Dropout = Annotated[float, Field(ge=0.0, lt=1.0)]
Count = Annotated[int, Field(ge=1, le=100_000)]
"""Epochs, patience, step size."""


_UNITS = TypeAdapter(Units)


def _hidden_sizes(value: Any) -> int | list[int]:
    # One error for both shapes (pydantic's union error would report each member) and the
    # same integer rules as every other size.
    try:
        if isinstance(value, list) and value:
            return [_UNITS.validate_python(v) for v in value]
        return _UNITS.validate_python(value)
    except ValidationError:
        raise PydanticCustomError(
            "hidden_sizes",
            f"expected an integer from 1 to {MAX_UNITS} or a non-empty list of them",
        ) from None


Hidden = Annotated[int | list[int], BeforeValidator(_hidden_sizes)]
"""Units of every layer, or one size per layer."""


class FeatureSource(StrictModel):
    """One per-time-step feature fed to the head; several are concatenated along D."""

    backbone: str
    weights: str = "imagenet"
    """``imagenet`` / ``kinetics`` / ``none`` / a path to a state_dict or .safetensors file."""
    layer: str | None = None
    """Intermediate layer instead of the pooled output (seed 004's two layers)."""
    grid: int = Field(default=1, ge=1, le=4)
    """Average ``layer``'s map over ``grid x grid`` cells instead of the whole frame, so the
    head sees where things are: ``C * grid * grid`` features per step."""
    stream: Literal["rgb", "flow"] = "rgb"

    @model_validator(mode="after")
    def _grid_needs_a_map(self) -> FeatureSource:
        if self.grid > 1 and self.layer is None:
            raise ValueError(
                f"grid {self.grid} pools a layer's map: give the layer too (e.g. "
                "efficientnet_lite0's bn2, resnet's layer4)"
            )
        return self


class InputConfig(StrictModel):
    """How videos become the model's input sequence."""

    sampling: SamplingConfig = SamplingConfig()
    transform: TransformConfig = TransformConfig()
    """Evaluation (and feature extraction) preprocessing."""
    train_transform: TransformConfig | None = None
    """Augmentation for end-to-end training; default: ``transform``."""
    features: list[FeatureSource] = Field(default_factory=list)
    """Features mode: frozen backbones whose outputs are cached and concatenated in order."""
    flow_method: Literal["tvl1", "farneback", "dis", "dis-fast", "raft-small", "raft-large"] = "tvl1"
    """Optical flow for ``stream: flow`` sources."""


class HeadConfig(StrictModel):
    """Temporal head over ``(B, T, D)`` features (see ``harkit.heads``)."""

    type: Literal["recurrent", "mean", "two_stream", "dual_layer_attention"] = "recurrent"
    cell: Literal["gru", "lstm"] = "gru"
    hidden: Hidden = 256
    num_layers: Layers = 1
    bidirectional: bool = False
    dropout: Dropout = 0.0
    fc: Sizes = Field(default_factory=list)
    pooling: Literal["last", "mean", "attention", "vote"] = "last"
    fusion: Literal["learned", "average"] = "learned"
    """Two-stream fusion: learned ``alpha*A + (1-alpha)*B`` or the plain average."""
    center: bool = False
    """Remove static appearance first: order-aware heads subtract each step's running mean
    (causal, so they stream); ``type: mean`` pools the spread around the clip's mean."""
    norm: Literal["none", "layer"] = "none"
    """``layer``: layer-normalise each feature source per step before the head (and before
    centering), so sources of different scale fuse on one footing."""


class NetworkConfig(StrictModel):
    """End-to-end networks trained on pixel clips."""

    type: Literal["c3d_gru", "crnn", "small2d_gru"]
    rnn: Literal["gru", "lstm", "none", "lstm_gru"] = "gru"
    """c3d_gru / small2d_gru: recurrent layer after the CNN (``none``: 3D CNN alone)."""
    units: Units = 128
    size: int = Field(default=100, ge=8, le=1024)
    """c3d_gru / small2d_gru: square input size (seed 003's layer table: 100)."""
    encoder: str = "resnet152"
    """crnn: frame backbone of the encoder."""
    encoder_weights: str = "imagenet"
    fine_tune: bool = True
    """crnn: train the encoder backbone too (False keeps it frozen)."""
    embed: Sizes = Field(default_factory=lambda: [1024, 768, 512])
    """crnn: FC sizes from the backbone feature to the embedding (seed 002)."""
    dropout: Dropout = 0.0


class OptimConfig(StrictModel):
    """Optimiser, schedule and loop settings (Lightning)."""

    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    lr: float = Field(default=1e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    scheduler: Literal["none", "step", "plateau"] = "none"
    step_size: Count = 10
    gamma: float = Field(default=0.1, gt=0.0, lt=1.0)
    """Learning-rate decay factor (StepLR gamma, ReduceLROnPlateau factor: below 1)."""
    epochs: Count = 30
    batch_size: Units = 32
    grad_clip: float | None = Field(default=None, gt=0.0, le=1e6)
    early_stopping: Count | None = None
    """Stop after this many epochs without a better validation accuracy."""
    val_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Group-aware share of the training split held out for validation (0: none)."""
    precision: Literal["32", "bf16", "16-mixed", "bf16-mixed"] = "32"
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    """Unsigned 32-bit, as numpy and Lightning take it."""
    deterministic: bool = False
    num_workers: int = Field(default=0, ge=0, le=256)


class Recipe(StrictModel):
    """A whole experiment: inputs, model, optimisation (one of the five papers, or yours)."""

    name: str
    description: str = ""
    paper: str = ""
    reported: dict[str, float] = Field(default_factory=dict)
    """The paper's numbers, for comparison tables."""
    mode: Literal["features", "end_to_end"]
    data: DatasetConfig | None = None
    input: InputConfig = InputConfig()
    head: HeadConfig | None = None
    network: NetworkConfig | None = None
    optim: OptimConfig = OptimConfig()

    @model_validator(mode="after")
    def _check_mode(self) -> Recipe:
        if self.mode == "features":
            if not self.input.features:
                raise ValueError("features mode needs input.features (at least one backbone)")
            if self.head is None:
                raise ValueError("features mode needs a head")
            if self.network is not None:
                raise ValueError("features mode takes a head, not a network")
        elif self.network is None:
            raise ValueError("end_to_end mode needs a network")
        elif (self.network.type == "crnn") != (self.head is not None):
            raise ValueError("an end-to-end 'crnn' needs a head; c3d_gru / small2d_gru take none")
        if self.mode == "features":
            segments = self.input.sampling.strategy == "segments"
            for source in self.input.features:
                kind = _kind(source.backbone)
                if kind is not None and (kind == "segment") != segments:
                    raise ValueError(
                        f"input.sampling.strategy {self.input.sampling.strategy!r} does not fit "
                        f"{kind} backbone {source.backbone!r}: segment (3D) backbones take "
                        "'segments' sampling, frame (2D) backbones the others"
                    )
        if not self.input.transform.square and (
            self.mode != "features" or any(_kind(s.backbone) != "frame" for s in self.input.features)
        ):
            raise ValueError(
                f"input.transform.crop_size {list(self.input.transform.crop_size or ())}: a "
                "non-square crop needs features mode with frame (2D) backbones"
            )
        return self


def _kind(backbone: str) -> str | None:
    from harkit.backbones import UnknownBackboneError, get_backbone_spec

    try:
        return get_backbone_spec(backbone).kind
    except UnknownBackboneError:  # named when the model is built
        return None


def recipe_dir() -> Path:
    """Folder of the built-in recipes (``HARKIT_RECIPES`` overrides it)."""
    env = os.environ.get("HARKIT_RECIPES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "recipes"


def list_recipes() -> list[str]:
    """Names of the built-in recipes, ablations as ``ablations/<name>``."""
    root = recipe_dir()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def _resolve(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    path = Path(name_or_path)
    candidates = [path]
    if relative_to is not None and not path.is_absolute():
        candidates.insert(0, relative_to / path)
    candidates.append(recipe_dir() / f"{name_or_path}.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"unknown recipe '{name_or_path}': not a file and not one of {', '.join(list_recipes())}"
    )


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def _load_raw(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path.resolve() in seen:
        raise ConfigError(f"{path}: 'base' chain loops back to itself")
    data = load_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    parent = _load_raw(_resolve(base, path.parent), (*seen, path.resolve()))
    # The paper's numbers belong to the base's own configuration, not to a variant of it:
    # a variant states its own 'reported' (or has none).
    parent.pop("reported", None)
    return _merge(parent, data)


def load_recipe(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """A built-in recipe by name (``fusion-gru``, ``ablations/...``) or a YAML file path."""
    path = _resolve(name_or_path)
    data = apply_overrides(_load_raw(path), overrides, source=str(path))
    return parse_config(Recipe, data, source=str(path))
