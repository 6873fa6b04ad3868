"""Recipes: one validated YAML file builds a model, its data and its optimiser.

A recipe file may start with ``base: <recipe name or path>``; it is then deep-merged over
that base, so an ablation is a few lines (``recipes/ablations/*.yaml``). Command-line
overrides (``head.hidden=512``) go on top of both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, confloat, model_validator

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


class FeatureSource(StrictModel):
    """One per-time-step feature fed to the head; several are concatenated along D."""

    backbone: str
    weights: str = "imagenet"
    """``imagenet`` / ``kinetics`` / ``none`` / a path to a state_dict or .safetensors file."""
    layer: str | None = None
    """Intermediate layer instead of the pooled output (seed 004's two layers)."""
    stream: Literal["rgb", "flow"] = "rgb"


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
    hidden: PositiveInt | list[PositiveInt] = 256
    num_layers: PositiveInt = 1
    bidirectional: bool = False
    dropout: confloat(ge=0.0, lt=1.0) = 0.0
    fc: list[PositiveInt] = Field(default_factory=list)
    pooling: Literal["last", "mean", "attention", "vote"] = "last"
    fusion: Literal["learned", "average"] = "learned"
    """Two-stream fusion: learned ``alpha*A + (1-alpha)*B`` or the plain average."""
    center: bool = False
    """Subtract each step's running mean over the clip first (removes static appearance)."""


class NetworkConfig(StrictModel):
    """End-to-end networks trained on pixel clips."""

    type: Literal["c3d_gru", "crnn", "small2d_gru"]
    rnn: Literal["gru", "lstm", "none", "lstm_gru"] = "gru"
    """c3d_gru / small2d_gru: recurrent layer after the CNN (``none``: 3D CNN alone)."""
    units: PositiveInt = 128
    size: PositiveInt = 100
    """c3d_gru / small2d_gru: square input size (seed 003's layer table: 100)."""
    encoder: str = "resnet152"
    """crnn: frame backbone of the encoder."""
    encoder_weights: str = "imagenet"
    fine_tune: bool = True
    """crnn: train the encoder backbone too (False keeps it frozen)."""
    embed: list[PositiveInt] = Field(default_factory=lambda: [1024, 768, 512])
    """crnn: FC sizes from the backbone feature to the embedding (seed 002)."""
    dropout: confloat(ge=0.0, lt=1.0) = 0.0


class OptimConfig(StrictModel):
    """Optimiser, schedule and loop settings (Lightning)."""

    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.0
    momentum: NonNegativeFloat = 0.9
    scheduler: Literal["none", "step", "plateau"] = "none"
    step_size: PositiveInt = 10
    gamma: PositiveFloat = 0.1
    epochs: PositiveInt = 30
    batch_size: PositiveInt = 32
    grad_clip: PositiveFloat | None = None
    early_stopping: PositiveInt | None = None
    """Stop after this many epochs without a better validation accuracy."""
    val_fraction: confloat(ge=0.0, lt=1.0) = 0.1
    """Group-aware share of the training split held out for validation (0: none)."""
    precision: Literal["32", "bf16", "16-mixed", "bf16-mixed"] = "32"
    seed: int = 0
    deterministic: bool = False
    num_workers: int = Field(default=0, ge=0)


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
        return self


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
    return _merge(_load_raw(_resolve(base, path.parent), (*seen, path.resolve())), data)


def load_recipe(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """A built-in recipe by name (``fusion-gru``, ``ablations/...``) or a YAML file path."""
    path = _resolve(name_or_path)
    data = apply_overrides(_load_raw(path), overrides, source=str(path))
    return parse_config(Recipe, data, source=str(path))
