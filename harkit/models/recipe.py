"""Recipes: one validated YAML file builds a model, its data and its optimiser.

A recipe file may start with ``base: <recipe name or path>``; it is then deep-merged over
that base, so an ablation is a few lines (``harkit/recipes/ablations/*.yaml``). Command-line
overrides (``head.hidden=512``) go on top of both.

``head:`` and ``network:`` sections are validated by their ``type`` (a discriminated union
over the registered heads and networks, :mod:`harkit.models.registry`): each type takes its
own keys only. When a variant or an override changes a section's ``type``, the keys it
inherits that the new type does not take are left behind (``head: {type: mean}`` over a GRU
head keeps ``dropout`` and ``norm``, not ``hidden``); keys it sets itself are validated.

The built-in recipes are package data (``harkit/recipes``), found with
:mod:`importlib.resources`, so an installed wheel carries them.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from harkit._lazy import validated
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
from harkit.models.builtin import (
    C3DGRUConfig,
    CRNNConfig,
    DualLayerAttentionHeadConfig,
    MeanHeadConfig,
    RecurrentHeadConfig,
    Small2DGRUConfig,
    TwoStreamHeadConfig,
)
from harkit.models.fields import MAX_UNITS, Count, Units
from harkit.models.registry import (
    HeadConfigBase,
    NetworkConfigBase,
    get_head_spec,
    get_network_spec,
    head_section,
    list_networks,
    network_section,
    on_change,
    section_default,
    section_keys,
)

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable  # Python 3.11+; importlib.abc before

    from harkit.arguments import Overrides

__all__ = [
    "MAX_UNITS",
    "C3DGRUConfig",
    "CRNNConfig",
    "DualLayerAttentionHeadConfig",
    "FeatureSource",
    "HeadConfigBase",
    "InputConfig",
    "MeanHeadConfig",
    "NetworkConfigBase",
    "OptimConfig",
    "Recipe",
    "RecurrentHeadConfig",
    "Small2DGRUConfig",
    "TwoStreamHeadConfig",
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
    flow_method: Literal["tvl1", "farneback", "dis", "dis-fast", "raft-small", "raft-large"] = (
        "tvl1"
    )
    """Optical flow for ``stream: flow`` sources."""


HeadSection = head_section()
"""``head:``: one of the registered heads' configs, chosen by ``type`` (default
``recurrent``); :func:`harkit.register_head` adds types."""
NetworkSection = network_section()
"""``network:``: one of the registered end-to-end networks' configs, chosen by ``type``."""


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
    head: HeadSection = None
    network: NetworkSection = None
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
        elif get_network_spec(self.network.type).takes_head != (self.head is not None):
            takers = [n for n in list_networks() if get_network_spec(n).takes_head]
            raise ValueError(
                f"an end-to-end '{self.network.type}' "
                f"{'takes no' if self.head is not None else 'needs a'} head (networks with "
                f"a head: {', '.join(takers) or 'none'})"
            )
        if self.head is not None:
            inputs = get_head_spec(self.head.type).inputs
            given = len(self.input.features) if self.mode == "features" else 1
            if inputs is not None and given != inputs:
                where = "input.features" if self.mode == "features" else "the network's one"
                raise ValueError(
                    f"head type '{self.head.type}' takes exactly {inputs} feature sources, "
                    f"got {given} ({where})"
                )
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
            self.mode != "features"
            or any(_kind(s.backbone) != "frame" for s in self.input.features)
        ):
            raise ValueError(
                f"input.transform.crop_size {list(self.input.transform.crop_size or ())}: a "
                "non-square crop needs features mode with frame (2D) backbones"
            )
        return self


def _refresh_sections() -> None:
    """Rebuild :class:`Recipe` when a head or network type is registered (or removed), so
    its ``head`` / ``network`` unions take exactly the registered types."""
    Recipe.model_fields["head"].annotation = head_section()
    Recipe.model_fields["network"].annotation = network_section()
    Recipe.model_rebuild(force=True)


on_change(_refresh_sections)


def _kind(backbone: str) -> str | None:
    from harkit.backbones import UnknownBackboneError, get_backbone_spec

    try:
        return get_backbone_spec(backbone).kind
    except UnknownBackboneError:  # named when the model is built
        return None


def recipe_dir() -> Path:
    """Folder of the built-in recipes (``HARKIT_RECIPES`` overrides it)."""
    env = os.environ.get("HARKIT_RECIPES")
    return Path(env) if env else _packaged_recipes()


@functools.cache
def _packaged_recipes() -> Path:
    """``harkit/recipes`` as a folder on disk. An installed package is one already; from a
    zipped install (zipimport) the files are copied out once per process, so that ``base:``
    references and ``ablations/`` resolve as they do everywhere else."""
    root = resources.files("harkit") / "recipes"
    if isinstance(root, Path):
        return root
    folder = Path(tempfile.mkdtemp(prefix="harkit-recipes-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    _copy_tree(root, folder)
    return folder


def _copy_tree(source: Traversable, dest: Path) -> None:
    for entry in source.iterdir():
        if entry.is_dir():
            (dest / entry.name).mkdir()
            _copy_tree(entry, dest / entry.name)
        elif entry.name.endswith(".yaml"):
            (dest / entry.name).write_bytes(entry.read_bytes())


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
    merged = _merge(parent, data)
    for section in _TYPED_SECTIONS:
        base, top = parent.get(section), data.get(section)
        if isinstance(base, dict) and isinstance(top, dict):
            merged[section] = _leave_behind(section, base, merged[section], set(top))
    return merged


_TYPED_SECTIONS = ("head", "network")


def _leave_behind(
    section: str, before: dict[str, Any], after: dict[str, Any], set_here: set[str]
) -> dict[str, Any]:
    """``after`` without the keys it inherited from ``before`` that its type does not take,
    when its ``type`` differs from ``before``'s; keys in ``set_here`` stay (and are
    validated). An unregistered type keeps every key: the recipe's error names the type."""
    default = section_default(section)
    keys = section_keys(section, after.get("type", default))
    if keys is None or before.get("type", default) == after.get("type", default):
        return after
    return {k: v for k, v in after.items() if k in keys or k in set_here or k not in before}


def _apply(
    data: dict[str, Any], overrides: list[str] | tuple[str, ...], source: str
) -> dict[str, Any]:
    """``apply_overrides``, leaving behind inherited keys of a section whose type it changes."""
    out = apply_overrides(data, overrides, source=source)
    keys = [o.partition("=")[0].strip().split(".") for o in overrides]
    for section in _TYPED_SECTIONS:
        before, after = data.get(section), out.get(section)
        if not (isinstance(before, dict) and isinstance(after, dict)):
            continue
        if any(k == [section] for k in keys):  # the whole section given: nothing inherited
            continue
        set_here = {k[1] for k in keys if len(k) > 1 and k[0] == section}
        out[section] = _leave_behind(section, before, after, set_here)
    return out


@validated
def load_recipe(name_or_path: str | Path, overrides: Overrides = ()) -> Recipe:
    """A built-in recipe by name (``fusion-gru``, ``ablations/...``) or a YAML file path;
    ``overrides``: ``key=value`` changes (a list, or one string for one change)."""
    path = _resolve(name_or_path)
    data = _apply(_load_raw(path), overrides, source=str(path))
    return parse_config(Recipe, data, source=str(path))
